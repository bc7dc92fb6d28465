import { useEffect, useRef, useState } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { api } from "../api/client";
import { useCan } from "../auth/identity";
import type { PlanRequest, TrainingPlan } from "../api/types";
import { PlanCard } from "../components/PlanCard";
import { draftText, type ChatLine } from "../stream/chatLines";
import { NdjsonSplitter } from "../stream/ndjson";

interface Turn {
  id: string;
  role: "user" | "assistant";
  text: string;
  plan: TrainingPlan | null;
  notice: string | null;
  jobId: string | null;
}

/** The chat panel: a request in words, the language model's draft as it writes it, then the
 * reply with the plan card under it. */
export function ChatPage() {
  const { conversationId } = useParams();
  const navigate = useNavigate();
  const [turns, setTurns] = useState<Turn[]>([]);
  const [draft, setDraft] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const bottom = useRef<HTMLDivElement>(null);
  const current = useRef<string | undefined>(conversationId);
  // Planning with the chat is part of submitting (trainyard/auth/roles.py): viewers read.
  const mayPlan = useCan("submit");

  useEffect(() => {
    if (!conversationId || conversationId === current.current) return;
    current.current = conversationId;
    api.conversation(conversationId).then(
      (c) =>
        setTurns(
          c.messages.map((m) => ({ id: m.id, role: m.role, text: m.content, plan: m.plan, notice: m.notice, jobId: m.job_id })),
        ),
      (e: Error) => setError(e.message),
    );
  }, [conversationId]);

  useEffect(() => {
    // Braces: scroll methods return a promise in new browsers, and an effect must not.
    void bottom.current?.scrollIntoView({ block: "end" });
  }, [turns]);

  const send = async () => {
    const message = draft.trim();
    if (!message || sending) return;
    setDraft("");
    setSending(true);
    setError(null);
    const pending = `pending-${Date.now()}`;
    setTurns((t) => [
      ...t,
      { id: `${pending}-u`, role: "user", text: message, plan: null, notice: null, jobId: null },
      { id: pending, role: "assistant", text: "", plan: null, notice: null, jobId: null },
    ]);
    try {
      const response = await api.chatStream(message, current.current ?? null);
      if (!response.ok || !response.body) {
        const body = (await response.json().catch(() => null)) as { detail?: string } | null;
        throw new Error(body?.detail ?? `the planner answered ${response.status}`);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const splitter = new NdjsonSplitter();
      const apply = (line: unknown) => {
        const item = line as ChatLine;
        if (item.type === "draft") {
          const text = draftText(item);
          setTurns((t) => t.map((turn) => (turn.id === pending ? { ...turn, text } : turn)));
        } else if (item.type === "reply") {
          current.current = item.conversation_id;
          setTurns((t) =>
            t.map((turn) =>
              turn.id === pending ? { ...turn, id: item.message_id, text: item.text, plan: item.plan, notice: item.notice } : turn,
            ),
          );
          if (conversationId !== item.conversation_id) navigate(`/chat/${item.conversation_id}`, { replace: true });
        } else if (item.type === "error") {
          throw new Error(item.detail);
        }
      };
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        splitter.push(value).forEach(apply);
      }
      splitter.end().forEach(apply);
    } catch (e) {
      setError((e as Error).message);
      // A draft is not a reply: the bubble goes, the question stays.
      setTurns((t) => t.filter((turn) => turn.id !== pending));
    } finally {
      setSending(false);
    }
  };

  const start = async (messageId: string, request: PlanRequest) => {
    if (!current.current) return;
    const job = await api.startPlan(current.current, request, messageId);
    setTurns((t) => t.map((turn) => (turn.id === messageId ? { ...turn, jobId: job.id } : turn)));
    navigate(`/jobs/${job.id}`);
  };

  return (
    <section className="chat">
      <div className="messages">
        {turns.length === 0 && (
          <div className="hint">
            <p>Ask for a training run in your own words, for example:</p>
            <p>
              <code>train yolo11n on my shapes dataset for 20 epochs at 320 with batch 8</code>
            </p>
            <p className="muted">Nothing runs until you press Start on the plan.</p>
          </div>
        )}
        {turns.map((turn) => (
          <div key={turn.id} className={`turn ${turn.role}`}>
            {turn.notice && <p className="notice">{turn.notice}</p>}
            <div className="bubble" data-testid={turn.role === "assistant" ? "chat-reply" : undefined}>
              {turn.text || (sending ? "…" : "")}
            </div>
            {turn.plan && (
              <PlanCard initial={turn.plan} startedJob={turn.jobId} onStart={(request) => start(turn.id, request)} />
            )}
          </div>
        ))}
        <div ref={bottom} />
      </div>
      {error && <p className="error">{error}</p>}
      {!mayPlan && (
        <p className="muted" data-testid="chat-viewer">
          Viewers read conversations; planning a run takes the member role.
        </p>
      )}
      <form
        className="composer"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <input
          data-testid="chat-input"
          value={draft}
          placeholder="train yolo11n on shapes for 20 epochs…"
          onChange={(e) => setDraft(e.target.value)}
          maxLength={4000}
          disabled={!mayPlan}
          autoFocus
        />
        <button data-testid="chat-send" type="submit" disabled={!mayPlan || sending || !draft.trim()}>
          Send
        </button>
      </form>
    </section>
  );
}
