"""The web app (platform/web, built by Vite) served by the backend at `/`."""
