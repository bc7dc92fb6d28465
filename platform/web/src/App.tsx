import { NavLink, Route, Routes } from "react-router-dom";
import { ChatPage } from "./pages/ChatPage";
import { DatasetsPage } from "./pages/DatasetsPage";
import { JobPage } from "./pages/JobPage";
import { JobsPage } from "./pages/JobsPage";

export function App() {
  return (
    <div className="app">
      <header className="nav">
        <span className="brand">Trainyard</span>
        <nav>
          <NavLink to="/" end>
            Chat
          </NavLink>
          <NavLink to="/jobs">Jobs</NavLink>
          <NavLink to="/datasets">Datasets</NavLink>
        </nav>
      </header>
      <main>
        <Routes>
          {/* One route for "/" and "/chat/<id>": the page stays mounted when a new
              conversation gets its URL. */}
          <Route path="/chat?/:conversationId?" element={<ChatPage />} />
          <Route path="/jobs" element={<JobsPage />} />
          <Route path="/jobs/:jobId" element={<JobPage />} />
          <Route path="/datasets" element={<DatasetsPage />} />
          <Route path="*" element={<p>No such page.</p>} />
        </Routes>
      </main>
    </div>
  );
}
