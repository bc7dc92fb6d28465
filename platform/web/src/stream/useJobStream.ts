// A job's live view: the stored events replayed, then live ones, over a WebSocket that
// reconnects by itself after the last event it applied (so a reload or a drop leaves no gap).
import { useEffect, useReducer, useState } from "react";
import type { JobEvent } from "../api/types";
import { TERMINAL_STATES } from "../api/types";
import { applyEvents, emptyView, type JobView } from "./reducer";
import { backoffMs, shouldReconnect, streamUrl } from "./reconnect";

export type Connection = "connecting" | "live" | "reconnecting" | "closed";

export function useJobStream(jobId: string): { view: JobView; connection: Connection } {
  const [view, dispatch] = useReducer(
    (current: JobView, events: JobEvent[] | null) => (events === null ? emptyView : applyEvents(current, events)),
    emptyView,
  );
  const [connection, setConnection] = useState<Connection>("connecting");

  useEffect(() => {
    dispatch(null);
    let lastSeq = 0;
    let terminal = false;
    let tries = 0;
    let socket: WebSocket | null = null;
    let timer: number | undefined;
    let stopped = false;

    const open = () => {
      socket = new WebSocket(streamUrl(window.location, jobId, lastSeq));
      socket.onopen = () => {
        tries = 0;
        setConnection("live");
      };
      socket.onmessage = (message: MessageEvent<string>) => {
        const event = JSON.parse(message.data) as JobEvent;
        if (event.seq <= lastSeq) return;
        lastSeq = event.seq;
        if (event.type === "state" && TERMINAL_STATES.has(String(event.data["to"]))) terminal = true;
        dispatch([event]);
      };
      socket.onclose = (close: CloseEvent) => {
        if (stopped) return;
        if (!shouldReconnect(close.code, terminal)) {
          setConnection("closed");
          return;
        }
        setConnection("reconnecting");
        timer = window.setTimeout(open, backoffMs(tries));
        tries += 1;
      };
    };
    open();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
      socket?.close();
    };
  }, [jobId]);

  return { view, connection };
}
