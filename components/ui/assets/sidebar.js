// The history sidebar: the caller's chats, newest first, grouped by age,
// one page at a time, or those matching a search; each can be renamed in
// place or deleted.
import * as api from "./api.js";
import { h, skeleton } from "./dom.js";

/** The server's default page size. */
const PAGE_SIZE = 20;
/** The longest title the server takes. */
const MAX_TITLE_CHARS = 200;
/** How long typing may pause before the search runs (ms). */
const SEARCH_DELAY = 250;
const GROUPS = ["Today", "Yesterday", "Previous 7 days", "Older"];

/** Which group a chat created at `createdAt` belongs to, seen from `now`. */
export function groupOf(createdAt, now = new Date()) {
  const created = new Date(createdAt);
  const daysAgo = (days) => new Date(now.getFullYear(), now.getMonth(), now.getDate() - days);
  if (created >= daysAgo(0)) return GROUPS[0];
  if (created >= daysAgo(1)) return GROUPS[1];
  if (created >= daysAgo(7)) return GROUPS[2];
  return GROUPS[3];
}

export class Sidebar {
  /**
   * `open(chatId)` is called when the user picks a chat, `deleted(chatId)`
   * after one of them was deleted, `renamed(chat)` after one was renamed.
   */
  constructor({ open, deleted, renamed }) {
    this.open = open;
    this.deleted = deleted;
    this.renamed = renamed;
    this.renamingId = null;
    this.search = ""; // the words the list is filtered by, trimmed
    this.latestRequest = 0; // answers to older requests are dropped
    const searchBox = document.getElementById("search");
    let pending;
    searchBox.addEventListener("input", () => {
      clearTimeout(pending);
      pending = setTimeout(() => this.searchFor(searchBox.value.trim()), SEARCH_DELAY);
    });
    this.list = document.getElementById("history");
    this.banner = document.getElementById("ephemeral");
    this.dialog = document.getElementById("confirm-delete");
    this.chats = [];
    this.hasMore = false;
    this.ephemeral = false;
    this.activeId = null;
    this.error = null;
    this.loading = true; // until the first page came
  }

  /** Shows only the chats matching `search` (all of them when it is empty). */
  async searchFor(search) {
    if (search === this.search) return;
    this.search = search;
    this.chats = [];
    this.hasMore = false;
    await this.refresh();
  }

  /** Loads the chats again: as many as are shown (at least a page, at most 100). */
  async refresh() {
    const request = ++this.latestRequest;
    try {
      const page = await api.history({
        limit: Math.min(100, Math.max(PAGE_SIZE, this.chats.length)),
        search: this.search,
      });
      if (request !== this.latestRequest) return;
      this.ephemeral = page === null;
      this.chats = page?.data ?? [];
      this.hasMore = page?.hasMore ?? false;
      this.error = null;
    } catch (error) {
      if (request !== this.latestRequest) return;
      this.error = error.message;
    }
    this.loading = false;
    this.render();
  }

  async loadMore() {
    const request = ++this.latestRequest;
    try {
      const page = await api.history({ startingAfter: this.chats.at(-1)?.id, search: this.search });
      if (request !== this.latestRequest) return;
      if (page) {
        const known = new Set(this.chats.map((chat) => chat.id));
        this.chats.push(...page.data.filter((chat) => !known.has(chat.id)));
        this.hasMore = page.hasMore;
      } else {
        this.ephemeral = true;
      }
      this.error = null;
    } catch (error) {
      if (request !== this.latestRequest) return;
      this.error = error.message;
    }
    this.render();
  }

  /**
   * The caller's own chat with this id (`{id, title, createdAt, visibility}`),
   * looked up through every page; null when it is not theirs.
   */
  async findOwn(chatId) {
    const loaded = this.chats.find((chat) => chat.id === chatId);
    if (loaded || this.ephemeral) return loaded ?? null;
    let startingAfter;
    for (;;) {
      const page = await api.history({ startingAfter, limit: 100 });
      if (!page) {
        this.ephemeral = true;
        return null;
      }
      const found = page.data.find((chat) => chat.id === chatId);
      if (found || !page.hasMore) return found ?? null;
      startingAfter = page.data.at(-1).id;
    }
  }

  /** Records a change made elsewhere (a new title, a new visibility). */
  update(chatId, change) {
    const chat = this.chats.find((known) => known.id === chatId);
    if (chat) Object.assign(chat, change);
    this.render();
  }

  setActive(chatId) {
    this.activeId = chatId;
    this.render();
  }

  render() {
    this.list.setAttribute("aria-busy", String(this.loading));
    if (this.loading) {
      this.list.replaceChildren(...skeleton(5, "skeleton-row"));
      return;
    }
    this.banner.hidden = !this.ephemeral;
    const children = [];
    if (this.error) children.push(h("p", { class: "sidebar-error", role: "alert" }, this.error));
    if (!this.ephemeral && !this.error && this.chats.length === 0) {
      children.push(h("p", { class: "muted" },
        this.search ? `No chats match “${this.search}”` : "No conversations yet"));
    }
    const now = new Date();
    for (const group of GROUPS) {
      const chats = this.chats.filter((chat) => groupOf(chat.createdAt, now) === group);
      if (chats.length === 0) continue;
      children.push(
        h("section", { class: "group", "aria-label": group },
          h("h2", {}, group),
          h("ul", {}, ...chats.map((chat) => this.row(chat)))),
      );
    }
    if (this.hasMore) {
      children.push(h("button", { type: "button", class: "load-more", onclick: () => this.loadMore() }, "Load more…"));
    }
    this.list.replaceChildren(...children);
  }

  row(chat) {
    const active = chat.id === this.activeId;
    const title = chat.title || "Untitled chat";
    const rowClass = active ? "chat active" : "chat";
    if (chat.id === this.renamingId) {
      return h("li", { class: rowClass, "data-chat-id": chat.id }, this.renameForm(chat));
    }
    const link = h("a", {
      href: `/chat/${chat.id}`,
      class: "chat-link",
      "aria-current": active ? "page" : undefined,
      title,
      onclick: (event) => {
        // Let the browser handle new tabs and windows.
        if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
        event.preventDefault();
        this.open(chat.id);
      },
    }, title);
    const visibility = chat.visibility === "public"
      ? h("span", { class: "public-mark", title: "Public" }, "Public")
      : "";
    const rename = h("button", {
      type: "button",
      class: "row-action rename",
      "aria-label": `Rename chat: ${title}`,
      title: "Rename",
      onclick: () => this.startRename(chat.id),
    }, "✎");
    const remove = h("button", {
      type: "button",
      class: "row-action delete",
      "aria-label": `Delete chat: ${title}`,
      onclick: () => this.confirmDelete(chat),
    }, "×");
    return h("li", { class: rowClass, "data-chat-id": chat.id }, link, visibility, rename, remove);
  }

  startRename(chatId) {
    this.renamingId = chatId;
    this.render();
    this.list.querySelector(".rename-input")?.select();
  }

  /**
   * The title as a text field: Enter (or leaving the field) saves it,
   * Escape keeps the old one.
   */
  renameForm(chat) {
    const input = h("input", {
      type: "text",
      class: "rename-input",
      value: chat.title,
      maxlength: String(MAX_TITLE_CHARS),
      "aria-label": "New title",
    });
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      this.renamingId = null;
      const title = input.value.trim();
      if (save && title && title !== chat.title) {
        try {
          chat.title = await api.renameChat(chat.id, title);
          this.error = null;
          this.renamed(chat);
        } catch (error) {
          this.error = `The chat could not be renamed: ${error.message}`;
        }
      }
      this.render();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      finish(false);
    });
    input.addEventListener("blur", () => finish(true));
    return h("form", {
      class: "rename-form",
      onsubmit: (event) => {
        event.preventDefault();
        finish(true);
      },
    }, input);
  }

  confirmDelete(chat) {
    document.getElementById("confirm-delete-text").textContent =
      `Delete “${chat.title || "Untitled chat"}”? This cannot be undone.`;
    this.dialog.returnValue = "";
    this.dialog.addEventListener("close", async () => {
      if (this.dialog.returnValue !== "delete") return;
      try {
        await api.deleteChat(chat.id);
        this.chats = this.chats.filter((known) => known.id !== chat.id);
        this.error = null;
        this.deleted(chat.id);
      } catch (error) {
        this.error = `The chat could not be deleted: ${error.message}`;
      }
      this.render();
    }, { once: true });
    this.dialog.showModal();
  }
}
