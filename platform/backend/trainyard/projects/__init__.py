"""Projects (a team's workspace): their members and roles, API keys and audit trail."""
