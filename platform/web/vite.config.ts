import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` serves the app on :5173 and forwards the API (and its WebSockets) and the sign-in to a local
// backend; `npm run build` writes dist/, which the backend serves at /.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/v1": { target: "http://127.0.0.1:8000", ws: true },
      "/auth": { target: "http://127.0.0.1:8000" },
    },
  },
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
