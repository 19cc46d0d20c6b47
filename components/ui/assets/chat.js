// The chat page: the conversation, the composer and the streaming reply.
import * as api from "./api.js";
import { copyText, h, icon, skeleton, uuid } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

/** How close to the bottom (px) still counts as "at the bottom". */
const FOLLOW_SLACK = 48;

/** The longest feedback comment the server keeps (characters). */
const MAX_COMMENT = 2000;

/** How long after the user's last message its reply may still be coming (ms). */
const REPLY_GRACE = 30_000;

/**
 * The most earlier messages, and characters in them, a temporary chat may
 * send with a new one (the server's limits, openapi.yaml); JavaScript counts
 * UTF-16 units, never fewer than the server's characters.
 */
const TEMPORARY_HISTORY_MESSAGES = 100;
const TEMPORARY_HISTORY_CHARS = 100_000;

export class ChatView {
  /**
   * `started(chatId, isNew)` is called when the server accepted a message (the chat
   * exists from then on), `finished(chatId, isNew)` when its reply ended.
   */
  constructor({ started, finished }) {
    this.started = started;
    this.finished = finished;
    this.list = document.getElementById("messages");
    this.composer = document.getElementById("composer");
    this.input = document.getElementById("input");
    this.sendButton = document.getElementById("send");
    this.stopButton = document.getElementById("stop");
    this.notice = document.getElementById("notice");
    this.readOnlyNote = document.getElementById("read-only");
    this.temporarySwitch = document.getElementById("temporary");
    this.temporaryNote = document.getElementById("temporary-note");
    this.chatId = null;
    this.messages = [];
    // Whether new chats are temporary (the switch), and whether the open
    // one is: kept only in this page, so leaving it discards it.
    this.temporary = false;
    this.temporaryChat = false;
    this.mayRate = false; // the replies can be rated: the chat is the reader's
    this.streaming = null; // the AbortController of the reply being streamed
    this.follow = true;
    this.loadId = 0;

    this.stopButton.addEventListener("click", () => this.stop());
    this.temporarySwitch.addEventListener("click", () => {
      if (this.chatId !== null) return;
      this.temporary = !this.temporary;
      this.showTemporary();
      this.input.focus();
    });
    this.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    // Follow the reply while the reader is at the bottom; stop when they scroll up.
    this.list.addEventListener("scroll", () => {
      const { scrollTop, scrollHeight, clientHeight } = this.list;
      this.follow = scrollHeight - scrollTop - clientHeight <= FOLLOW_SLACK;
    });
  }

  /** An empty conversation, ready for a first message. */
  startNew() {
    this.leave();
    this.chatId = null;
    this.temporaryChat = false;
    this.messages = [];
    this.setReadOnly(false);
    this.render();
    this.input.focus();
  }

  /**
   * Shows a past chat's messages. Answers whether they could be shown; a
   * later `open` or `startNew` makes an earlier one answer false.
   */
  async open(chatId) {
    this.leave();
    this.chatId = chatId;
    this.temporaryChat = false;
    this.showTemporary();
    this.messages = [];
    this.mayRate = false;
    const loadId = ++this.loadId;
    this.composer.hidden = true;
    this.readOnlyNote.hidden = true;
    this.list.setAttribute("aria-busy", "true");
    this.list.replaceChildren(...skeleton(3, "skeleton-message"));
    try {
      const answer = await api.messages(chatId);
      if (loadId !== this.loadId) return false;
      this.messages = answer.data.map(shownMessage);
      this.render();
      if (answer.source === "mock") {
        this.showNotice("The chat history is unavailable right now (ephemeral mode), so earlier messages cannot be shown.");
      } else if (answer.hasMore) {
        this.showNotice(`This chat is long: only its newest ${answer.data.length} messages are shown.`);
      }
      this.follow = true;
      this.scrollToEnd();
      const last = answer.data.at(-1);
      if (answer.source === "live" && last && (last.status === "streaming"
          || (last.role === "user" && Date.now() - Date.parse(last.createdAt) < REPLY_GRACE))) {
        this.resume();
      }
      return true;
    } catch (error) {
      if (loadId !== this.loadId) return false;
      this.messages = [];
      this.render();
      this.showNotice(openFailure(error));
      return false;
    } finally {
      if (loadId === this.loadId) this.list.setAttribute("aria-busy", "false");
    }
  }

  /** A chat one may reply to is one's own: its replies can be rated too. */
  setReadOnly(readOnly) {
    this.composer.hidden = readOnly;
    this.readOnlyNote.hidden = !readOnly;
    this.mayRate = !readOnly && !this.temporaryChat;
    this.showTemporary();
    for (const message of this.messages) this.fill(message);
  }

  /**
   * The temporary switch: offered on a new chat, shown pressed and locked
   * in a temporary one, hidden in a saved one; its note says what it means.
   */
  showTemporary() {
    const offered = this.chatId === null || this.temporaryChat;
    const pressed = this.chatId === null ? this.temporary : this.temporaryChat;
    this.temporarySwitch.hidden = !offered || this.composer.hidden;
    this.temporarySwitch.disabled = this.chatId !== null;
    this.temporarySwitch.setAttribute("aria-pressed", String(pressed));
    this.temporaryNote.hidden = this.temporarySwitch.hidden || !pressed;
  }

  /** Stops rendering a reply still streaming (the server keeps it anyway). */
  leave() {
    this.streaming?.abort();
    this.streaming = null;
    this.loadId++;
    this.hideNotice();
    this.setBusy(false);
  }

  async send() {
    const text = this.input.value;
    if (!text.trim() || this.streaming) return;
    const isNew = this.chatId === null;
    const chatId = this.chatId ?? uuid();
    const temporary = isNew ? this.temporary : this.temporaryChat;
    const earlier = this.messages
      .filter((message) => message.content)
      .map(({ role, content }) => ({ role, content }));
    const question = { id: uuid(), role: "user", content: text };
    const reply = { role: "assistant", content: "", pending: true, error: null };
    const asked = { id: question.id, role: question.role, content: question.content };
    // A temporary chat is stored nowhere: the server hears it from here,
    // and the rest of the page (the address, the sidebar) never learns of it.
    const body = temporary
      ? { id: chatId, temporary: true, messages: [...newestWithinLimits(earlier), asked] }
      : { id: chatId, messages: [...earlier, asked] };

    this.chatId = chatId;
    this.temporaryChat = temporary;
    if (temporary) this.mayRate = false;
    this.showTemporary();
    this.messages.push(question, reply);
    this.input.value = "";
    const accepted = await this.streamInto(reply, {
      start: (onEvent, signal) => api.streamChat(body, onEvent, signal),
      opened: () => {
        if (!temporary) this.started(chatId, isNew);
      },
      refused: (error) => {
        // Refused before anything was stored: take the message back and
        // give its text back to the composer, so nothing typed is lost.
        this.messages.splice(this.messages.indexOf(question), 2);
        if (isNew) {
          this.chatId = null;
          this.temporaryChat = false;
          this.showTemporary();
        }
        if (!this.input.value) this.input.value = text;
        this.render();
        this.showNotice(`Your message was not sent: ${error.message}`);
      },
    });
    if (accepted && !temporary) this.finished(chatId, isNew);
  }

  /**
   * Streams a reply into `reply` (already in the conversation): `start(onEvent,
   * signal)` sends the request, `opened()` is told when the server accepted
   * it, `refused(error)` when it refused before anything streamed. Answers
   * whether it was accepted; a view that left the chat meanwhile answers
   * false and renders nothing.
   */
  async streamInto(reply, { start, opened = () => {}, refused }) {
    const controller = new AbortController();
    this.streaming = controller;
    this.hideNotice();
    this.setBusy(true);
    this.follow = true;
    this.render();
    let accepted = false;
    try {
      await start(this.replyEvents(reply, () => {
        accepted = true;
        opened();
      }), controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return false;
      if (accepted) reply.error = error.message;
      else refused(error);
    } finally {
      if (this.streaming === controller) {
        this.streaming = null;
        this.setBusy(false);
      }
    }
    if (controller.signal.aborted) return false;
    reply.pending = false;
    this.renderReply(reply);
    return accepted;
  }

  /**
   * Renders a reply's events as they arrive; `opened` is called once the
   * server accepted the request (the stream began).
   */
  replyEvents(reply, opened) {
    return (event) => {
      if (event.type === "open") {
        opened();
        this.stopButton.hidden = false;
      } else if (event.type === "delta") {
        reply.content += event.text;
      } else if (event.type === "meta") {
        reply.id = event.assistantMessageId;
        reply.traceId = event.traceId;
        reply.stopped = event.stopped === true;
      } else if (event.type === "error") {
        reply.error = event.error;
      }
      this.renderReply(reply);
    };
  }

  /**
   * Replaces the last reply by a new one, streamed into its place. Refused
   * before anything streamed, the old reply stays as it was.
   */
  async regenerate(reply) {
    if (this.streaming) return;
    const before = { ...reply };
    Object.assign(reply, { content: "", pending: true, error: null, stopped: false, vote: null, feedbackNote: null });
    await this.streamInto(reply, {
      start: (onEvent, signal) => api.regenerateReply(this.chatId, onEvent, signal),
      refused: (error) => {
        Object.assign(reply, before);
        this.showNotice(`The reply was not regenerated: ${error.message}`);
      },
    });
  }

  /**
   * Follows the reply still being written in the open chat (the page was
   * reloaded, or the chat opened elsewhere): what came so far, then the
   * rest as it comes. When none is, the conversation stays as loaded.
   */
  async resume() {
    const loadId = this.loadId;
    const last = this.messages.at(-1);
    const placeholder = last?.role !== "assistant";
    const reply = placeholder ? { role: "assistant", content: "", pending: true, error: null } : last;
    const before = { ...reply };
    if (placeholder) this.messages.push(reply);
    reply.pending = true;
    let followed = false;
    await this.streamInto(reply, {
      start: (onEvent, signal) => api.followReply(this.chatId, (event) => {
        if (event.type === "open") {
          followed = true;
          reply.content = ""; // the stream tells the reply from its start
        }
        onEvent(event);
      }, signal),
      refused: () => {},
    });
    if (followed || loadId !== this.loadId) return;
    // Nothing is being written (any more): the reply may have ended between
    // loading the chat and asking to follow it, so show the chat as stored now.
    try {
      const answer = await api.messages(this.chatId);
      if (loadId !== this.loadId) return;
      this.messages = answer.data.map(shownMessage);
    } catch {
      if (loadId !== this.loadId) return;
      if (placeholder) this.messages.splice(this.messages.indexOf(reply), 1);
      else Object.assign(reply, before);
    }
    this.render();
  }

  setBusy(busy) {
    this.sendButton.disabled = busy;
    this.sendButton.textContent = busy ? "Replying…" : "Send";
    this.sendButton.hidden = false;
    this.stopButton.hidden = true;
    this.stopButton.disabled = false;
    this.stopButton.textContent = "Stop";
    if (busy) this.sendButton.hidden = true;
  }

  /**
   * Asks the server to stop the reply being streamed; the stream then ends
   * on its own (with what came so far), as any reply does.
   */
  async stop() {
    if (!this.streaming || this.stopButton.disabled) return;
    this.stopButton.disabled = true;
    this.stopButton.textContent = "Stopping…";
    try {
      await api.stopReply(this.chatId);
    } catch (error) {
      this.stopButton.disabled = false;
      this.stopButton.textContent = "Stop";
      this.showNotice(`The reply could not be stopped: ${error.message}`);
    }
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
  }

  hideNotice() {
    this.notice.hidden = true;
    this.notice.textContent = "";
  }

  render() {
    if (this.messages.length === 0) {
      this.list.replaceChildren(h("p", { class: "empty" }, "Ask anything to start a chat."));
      return;
    }
    this.list.replaceChildren(...this.messages.map((message) => {
      message.element = h("article", { class: `message ${message.role}` });
      this.fill(message);
      return message.element;
    }));
    this.scrollToEnd();
  }

  renderReply(reply) {
    this.fill(reply);
    this.scrollToEnd();
  }

  /** Writes a message's text, how its reply is going and its rating into its element. */
  fill(message) {
    const element = message.element;
    if (!element) return;
    element.classList.toggle("pending", Boolean(message.pending));
    element.setAttribute("aria-busy", message.pending ? "true" : "false");
    const body = message.role === "assistant"
      ? h("div", { class: "text markdown" }, renderMarkdown(message.content))
      : h("div", { class: "text" }, message.content);
    const parts = [h("span", { class: "sr-only" }, message.role === "user" ? "You: " : "Assistant: "), body];
    if (message.pending && !message.content) body.append(h("span", { class: "typing" }, "Thinking…"));
    if (message.error) {
      parts.push(h("p", { class: "message-error", role: "alert" }, `The reply failed: ${message.error}`));
    }
    if (message.stopped) parts.push(h("p", { class: "message-stopped" }, "Stopped"));
    if (message.content && !message.pending) {
      const copy = h("button", { type: "button", class: "copy copy-message", "aria-label": "Copy message" }, "Copy");
      copy.addEventListener("click", () => copyText(message.content, copy));
      parts.push(copy);
    }
    if (this.mayRate && message.role === "assistant" && message.id && !message.pending) {
      parts.push(this.feedbackBar(message));
    }
    if (this.mayRate && message.role === "assistant" && !message.pending && !this.streaming
        && this.messages.at(-1) === message) {
      parts.push(h("button", {
        type: "button", class: "regenerate", onclick: () => this.regenerate(message),
      }, "↻ Regenerate"));
    }
    element.replaceChildren(...parts);
  }

  /**
   * Thumbs up and down under a reply (the pressed one withdraws the rating,
   * the other changes it), a comment once it is rated, and a quiet note of
   * what happened.
   */
  feedbackBar(message) {
    const vote = message.vote;
    const busy = Boolean(message.feedbackBusy);
    const thumb = (up) => h("button", {
      type: "button",
      class: `thumb ${up ? "thumb-up" : "thumb-down"}`,
      "aria-pressed": String(vote?.isUpvoted === up),
      "aria-label": up ? "Good reply" : "Bad reply",
      title: vote?.isUpvoted === up ? "Withdraw your rating" : up ? "Good reply" : "Bad reply",
      disabled: busy,
      onclick: () => this.rate(message, vote?.isUpvoted === up ? null : up, vote?.comment ?? null),
    }, icon("thumb-up", { flip: !up }));
    const bar = h("div", { class: "feedback" }, thumb(true), thumb(false));
    if (vote && message.editingComment) {
      const input = h("input", {
        type: "text", class: "comment-input", maxlength: String(MAX_COMMENT),
        "aria-label": "Comment on this reply", placeholder: "What made it good or bad? (optional)",
        value: vote.comment ?? "",
      });
      const form = h("form", {
        class: "comment-form",
        onsubmit: (event) => {
          event.preventDefault();
          message.editingComment = false;
          this.rate(message, vote.isUpvoted, input.value);
        },
      }, input,
      h("button", { type: "submit", class: "comment-save", disabled: busy }, "Save"),
      h("button", {
        type: "button", class: "comment-cancel",
        onclick: () => { message.editingComment = false; this.fill(message); },
      }, "Cancel"));
      bar.append(form);
      queueMicrotask(() => input.focus());
    } else if (vote) {
      bar.append(h("button", {
        type: "button", class: "comment-toggle", disabled: busy,
        onclick: () => { message.editingComment = true; this.fill(message); },
      }, vote.comment ? "Edit comment" : "Add a comment"));
    }
    if (message.feedbackNote) bar.append(h("span", { class: "feedback-note", role: "status" }, message.feedbackNote));
    return bar;
  }

  /** Rates the reply (`up`: true or false) or withdraws its rating (null). */
  async rate(message, up, comment) {
    const chatId = this.chatId;
    message.feedbackBusy = true;
    this.fill(message);
    try {
      if (up === null) {
        await api.withdrawRating(chatId, message.id);
        message.vote = null;
        message.feedbackNote = "Rating withdrawn.";
      } else {
        const vote = await api.rate(chatId, message.id, up, comment);
        message.vote = { isUpvoted: vote.isUpvoted, comment: vote.comment };
        message.feedbackNote = "Thanks for the feedback.";
      }
    } catch (error) {
      message.feedbackNote = `Your rating was not saved: ${error.message}`;
    } finally {
      message.feedbackBusy = false;
    }
    this.fill(message);
  }

  scrollToEnd() {
    if (this.follow) this.list.scrollTop = this.list.scrollHeight;
  }
}

/**
 * The newest of a temporary chat's earlier messages that the server takes
 * with a new one (the older ones are left out, as a stored chat's are).
 */
function newestWithinLimits(messages) {
  const kept = [];
  let chars = 0;
  for (const message of [...messages].reverse()) {
    chars += message.content.length;
    if (kept.length === TEMPORARY_HISTORY_MESSAGES || chars > TEMPORARY_HISTORY_CHARS) break;
    kept.unshift(message);
  }
  return kept;
}

/** A stored message (as `/api/messages` answers it) as the page shows it. */
function shownMessage(message) {
  return {
    id: message.id,
    role: message.role,
    content: api.textOf(message),
    traceId: message.traceId,
    vote: message.vote ?? null,
    stopped: message.status === "stopped",
  };
}

function openFailure(error) {
  switch (error.status) {
    case 400: return "This is not a valid chat link.";
    case 403: return "This chat is private: only its owner can read it.";
    case 404: return "This chat does not exist, or it was deleted.";
    default: return `The chat could not be loaded: ${error.message}`;
  }
}
