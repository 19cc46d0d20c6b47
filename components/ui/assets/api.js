// The app's HTTP API (openapi.yaml), as the views use it.

/** A refusal from the server: its status and its `{"error": ...}` sentence. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function send(method, path, body, signal) {
  // A file (a Blob) goes as it is; anything else as JSON.
  const file = body instanceof Blob;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "content-type": file ? "application/octet-stream" : "application/json" },
      body: body === undefined || file ? body : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, "The server cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) throw await refusal(response);
  return response;
}

async function refusal(response) {
  try {
    const body = await response.json();
    if (typeof body.error === "string") return new ApiError(response.status, body.error);
  } catch {
    // Not our JSON error (a proxy's page, say): describe the status instead.
  }
  return new ApiError(response.status, `The server answered ${response.status} ${response.statusText}.`);
}

/** `{user: {id, email, name}, authenticated}`. */
export async function session() {
  return (await send("GET", "/api/session")).json();
}

/**
 * One page of the caller's chats, most recently active first: `{data,
 * hasMore, pinned?}` (`pinned` on the main list's first page), or `null` in
 * ephemeral mode (the database is unavailable: 204). `startingAfter` is a
 * listed chat's `cursor`; `folder` a folder's id; `archived` is "only" (the
 * archive) or "include" (every chat, wherever it is).
 */
export async function history({ startingAfter, limit, search, folder, archived } = {}) {
  const query = new URLSearchParams();
  if (startingAfter) query.set("starting_after", startingAfter);
  if (limit) query.set("limit", String(limit));
  if (search) query.set("q", search);
  if (folder) query.set("folder", folder);
  if (archived) query.set("archived", archived);
  const response = await send("GET", `/api/history?${query}`);
  return response.status === 204 ? null : response.json();
}

/** The caller's folders `[{id, name, position}]`, or `null` in ephemeral mode. */
export async function folders() {
  const response = await send("GET", "/api/folders");
  return response.status === 204 ? null : (await response.json()).data;
}

export async function createFolder(name) {
  return (await send("POST", "/api/folders", { name })).json();
}

export async function renameFolder(folderId, name) {
  return (await send("PATCH", `/api/folders/${encodeURIComponent(folderId)}`, { name })).json();
}

export async function deleteFolder(folderId) {
  await send("DELETE", `/api/folders/${encodeURIComponent(folderId)}`);
}

/** Deletes every chat of the caller's; answers how many went. */
export async function deleteAllChats() {
  return (await (await send("POST", "/api/history/delete", { all: true })).json()).deleted;
}

export async function setPinned(chatId, pinned) {
  await send("PATCH", `/api/chat/${encodeURIComponent(chatId)}/pinned`, { pinned });
}

export async function setArchived(chatId, archived) {
  await send("PATCH", `/api/chat/${encodeURIComponent(chatId)}/archived`, { archived });
}

/** Files the chat in a folder, or in none (`folderId` null). */
export async function fileChat(chatId, folderId) {
  await send("PATCH", `/api/chat/${encodeURIComponent(chatId)}/folder`, { folderId });
}

/**
 * `{data: [{id, role, parts, traceId, createdAt, status, vote}], source:
 * "live" | "mock", hasMore}`; `vote` is `{isUpvoted, comment}` or null.
 */
export async function messages(chatId) {
  return (await send("GET", `/api/messages/${encodeURIComponent(chatId)}`)).json();
}

export async function deleteChat(chatId) {
  await send("DELETE", `/api/chat/${encodeURIComponent(chatId)}`);
}

export async function setVisibility(chatId, visibility) {
  const response = await send("PATCH", `/api/chat/${encodeURIComponent(chatId)}/visibility`, { visibility });
  return (await response.json()).visibility;
}

/** Renames one of the caller's chats; answers the title as stored (trimmed). */
export async function renameChat(chatId, title) {
  const response = await send("PATCH", `/api/chat/${encodeURIComponent(chatId)}/title`, { title });
  return (await response.json()).title;
}

/** Asks the server to stop the reply streaming in the chat. */
export async function stopReply(chatId) {
  await send("POST", `/api/chat/${encodeURIComponent(chatId)}/stop`);
}

/** Rates an assistant reply (again: changes the rating); answers the vote as stored. */
export async function rate(chatId, messageId, isUpvoted, comment) {
  const response = await send("PUT", "/api/feedback", { chatId, messageId, isUpvoted, comment });
  return response.json();
}

export async function withdrawRating(chatId, messageId) {
  await send("DELETE", `/api/feedback/${encodeURIComponent(chatId)}/${encodeURIComponent(messageId)}`);
}

/**
 * Imports a file (this app's export, ChatGPT's data export ZIP or its
 * conversations file): `{chatsImported, chatsAlreadyThere, skipped:
 * [{source, reason}], skippedParts: {reason: count}}`.
 */
export async function importHistory(file) {
  return (await send("POST", "/api/import", file)).json();
}

/** The text of a stored message: its text parts, joined. */
export function textOf(message) {
  const parts = Array.isArray(message.parts) ? message.parts : [];
  return parts.filter((part) => part?.type === "text").map((part) => part.text ?? "").join("");
}

/**
 * Posts to `/api/chat` and calls `onEvent` with each event of the reply as
 * it arrives: `{type: "open"}` once the server accepted the message, then
 * `{type: "delta", text}`, `{type: "meta", ...}` and `{type: "error", error}`.
 * Resolves when the stream ends; throws an `ApiError` when the server
 * refuses before streaming or the connection breaks, and the abort error
 * when `signal` aborts.
 */
export async function streamChat(body, onEvent, signal) {
  await streamReply("POST", "/api/chat", body, onEvent, signal);
}

/** Replaces the chat's last reply by a new one, streamed as `streamChat` streams. */
export async function regenerateReply(chatId, onEvent, signal) {
  await streamReply("POST", `/api/chat/${encodeURIComponent(chatId)}/regenerate`, undefined, onEvent, signal);
}

/**
 * Follows the reply being written in the chat, from its start, as
 * `streamChat` streams; nothing happens (no "open") when none is.
 */
export async function followReply(chatId, onEvent, signal) {
  await streamReply("GET", `/api/chat/${encodeURIComponent(chatId)}/stream`, undefined, onEvent, signal);
}

async function streamReply(method, path, body, onEvent, signal) {
  const response = await send(method, path, body, signal);
  if (response.status === 204) return;
  onEvent({ type: "open" });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ApiError(0, "The connection broke before the reply was complete.");
    }
    if (chunk.done) return;
    buffered += chunk.value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffered.indexOf("\n\n")) !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const event = parseEvent(block);
      if (event) onEvent(event);
    }
  }
}

/** One server-sent event block, or null for comments, keep-alives and `[DONE]`. */
function parseEvent(block) {
  const data = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""))
    .join("\n");
  if (!data || data === "[DONE]") return null;
  let parsed;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  if (parsed.type === "meta" || parsed.type === "error") return parsed;
  // The model's own chunks: OpenAI chat completions or the Responses API.
  const text =
    parsed.type === "response.output_text.delta"
      ? parsed.delta
      : parsed.choices?.[0]?.delta?.content;
  return typeof text === "string" && text ? { type: "delta", text } : null;
}
