// The history sidebar: the caller's chats, most recently active first,
// grouped by age, one page at a time, or those matching a search; above
// them the pinned chats and the caller's folders (collapsible, their chats
// loaded when opened); below, the archive. Each chat can be renamed in
// place, deleted, pinned, archived and filed in a folder (from its menu, or
// by dragging it onto a folder).
import * as api from "./api.js";
import { h, skeleton } from "./dom.js";

/** The server's default page size. */
const PAGE_SIZE = 20;
/** The longest title the server takes. */
const MAX_TITLE_CHARS = 200;
/** The longest folder name the server takes. */
const MAX_FOLDER_NAME_CHARS = 100;
/** How long typing may pause before the search runs (ms). */
const SEARCH_DELAY = 250;
const GROUPS = ["Today", "Yesterday", "Previous 7 days", "Older"];
/** What a dragged chat carries. */
const DRAGGED_CHAT = "application/x-chat-id";

/** Which group a chat last active at `at` belongs to, seen from `now`. */
export function groupOf(at, now = new Date()) {
  const when = new Date(at);
  const daysAgo = (days) => new Date(now.getFullYear(), now.getMonth(), now.getDate() - days);
  if (when >= daysAgo(0)) return GROUPS[0];
  if (when >= daysAgo(1)) return GROUPS[1];
  if (when >= daysAgo(7)) return GROUPS[2];
  return GROUPS[3];
}

/**
 * A text field edited in place: Enter (or leaving the field) calls
 * `finish(true)`, Escape `finish(false)`.
 */
function inPlaceForm(input, finish, className) {
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  return h("form", {
    class: className,
    onsubmit: (event) => {
      event.preventDefault();
      finish(true);
    },
  }, input);
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
    this.menuId = null; // the chat whose menu is open
    this.editingFolder = null; // the folder being named: its id, or "new"
    this.search = ""; // the words the list is filtered by, trimmed
    this.archive = false; // showing the archive instead of the chats
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
    this.pinned = [];
    this.folders = [];
    /** Each open folder's chats: id → `{chats, hasMore}` (absent: loading). */
    this.folderChats = new Map();
    this.openFolders = new Set();
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

  /**
   * Loads the chats again: as many as are shown (at least a page, at most
   * 100), the pins and folders with them, and the chats of the open folders.
   */
  async refresh() {
    const request = ++this.latestRequest;
    try {
      const placed = !this.search && !this.archive;
      const [page, folders] = await Promise.all([
        api.history({
          limit: Math.min(100, Math.max(PAGE_SIZE, this.chats.length)),
          search: this.search,
          archived: this.archive ? "only" : undefined,
        }),
        placed ? api.folders() : this.folders,
      ]);
      if (request !== this.latestRequest) return;
      this.ephemeral = page === null;
      this.chats = page?.data ?? [];
      this.pinned = placed ? page?.pinned ?? [] : [];
      this.hasMore = page?.hasMore ?? false;
      this.folders = folders ?? [];
      this.error = null;
      if (placed) {
        const open = this.folders.filter((folder) => this.openFolders.has(folder.id));
        await Promise.all(open.map((folder) => this.loadFolder(folder.id)));
      }
    } catch (error) {
      if (request !== this.latestRequest) return;
      this.error = error.message;
    }
    this.loading = false;
    this.render();
  }

  /** The chats of a folder (its first 100; more on "Load more…"). */
  async loadFolder(folderId, startingAfter) {
    const page = await api.history({ folder: folderId, limit: 100, startingAfter });
    const earlier = startingAfter ? this.folderChats.get(folderId)?.chats ?? [] : [];
    this.folderChats.set(folderId, {
      chats: [...earlier, ...(page?.data ?? [])],
      hasMore: page?.hasMore ?? false,
    });
  }

  async loadMore() {
    const request = ++this.latestRequest;
    try {
      const page = await api.history({
        startingAfter: this.chats.at(-1)?.cursor,
        search: this.search,
        archived: this.archive ? "only" : undefined,
      });
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

  /** Every chat the sidebar has loaded, wherever it is shown. */
  loaded() {
    const inFolders = [...this.folderChats.values()].flatMap((folder) => folder.chats);
    return [...this.pinned, ...inFolders, ...this.chats];
  }

  /** A loaded chat of the caller's with this id, or undefined. */
  known(chatId) {
    return this.loaded().find((chat) => chat.id === chatId);
  }

  /**
   * The caller's own chat with this id (`{id, title, createdAt, visibility,
   * ...}`), looked up through every chat of theirs (archived and filed ones
   * too); null when it is not theirs.
   */
  async findOwn(chatId) {
    const loaded = this.known(chatId);
    if (loaded || this.ephemeral) return loaded ?? null;
    let startingAfter;
    for (;;) {
      const page = await api.history({ startingAfter, limit: 100, archived: "include" });
      if (!page) {
        this.ephemeral = true;
        return null;
      }
      const found = page.data.find((chat) => chat.id === chatId);
      if (found || !page.hasMore) return found ?? null;
      startingAfter = page.data.at(-1).cursor;
    }
  }

  /** Records a change made elsewhere (a new title, a new visibility). */
  update(chatId, change) {
    for (const chat of this.loaded()) {
      if (chat.id === chatId) Object.assign(chat, change);
    }
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
    if (this.archive) {
      children.push(h("div", { class: "archive-head" },
        h("h2", {}, "Archived chats"),
        h("button", { type: "button", class: "archive-back", onclick: () => this.showArchive(false) }, "← Back to chats")));
    }
    const placed = !this.search && !this.archive && !this.ephemeral;
    if (placed && this.pinned.length > 0) {
      children.push(h("section", { class: "group pinned", "aria-label": "Pinned" },
        h("h2", {}, "Pinned"),
        h("ul", {}, ...this.pinned.map((chat) => this.row(chat)))));
    }
    if (placed && (this.folders.length > 0 || this.editingFolder === "new")) {
      const creating = this.editingFolder === "new" ? [this.folderForm(null)] : [];
      children.push(h("section", { class: "group folders", "aria-label": "Folders" },
        h("h2", {}, "Folders"),
        ...this.folders.map((folder) => this.folder(folder)),
        ...creating));
    }
    const empty = this.chats.length === 0 && (!placed || (this.pinned.length === 0 && this.folders.length === 0));
    if (!this.ephemeral && !this.error && empty) {
      const nothing = this.search ? `No chats match “${this.search}”`
        : this.archive ? "No archived chats" : "No conversations yet";
      children.push(h("p", { class: "muted" }, nothing));
    }
    const now = new Date();
    for (const group of GROUPS) {
      const chats = this.chats.filter((chat) => groupOf(chat.lastActivityAt ?? chat.createdAt, now) === group);
      if (chats.length === 0) continue;
      const section = h("section", { class: "group", "aria-label": group },
        h("h2", {}, group),
        h("ul", {}, ...chats.map((chat) => this.row(chat))));
      // Dropping a chat on the list takes it out of its folder.
      if (placed) this.acceptDrops(section, null);
      children.push(section);
    }
    if (this.hasMore) {
      children.push(h("button", { type: "button", class: "load-more", onclick: () => this.loadMore() }, "Load more…"));
    }
    if (!this.search && !this.ephemeral && !this.archive) {
      children.push(h("div", { class: "sidebar-tools" },
        h("button", { type: "button", class: "new-folder", onclick: () => this.editFolder(null) }, "+ New folder"),
        h("button", { type: "button", class: "show-archive", onclick: () => this.showArchive(true) }, "Archived chats"),
        h("button", { type: "button", class: "delete-all", onclick: () => this.confirmDeleteAll() }, "Delete all…")));
    }
    this.list.replaceChildren(...children);
  }

  /** A folder: its name (a toggle), its actions, and when open its chats. */
  folder(folder) {
    const open = this.openFolders.has(folder.id);
    const loaded = this.folderChats.get(folder.id);
    const toggle = h("button", {
      type: "button",
      class: "folder-toggle",
      "aria-expanded": String(open),
      onclick: () => this.toggleFolder(folder.id),
    }, `${open ? "▾" : "▸"} ${folder.name}`);
    const rename = h("button", {
      type: "button",
      class: "row-action rename-folder",
      "aria-label": `Rename folder: ${folder.name}`,
      title: "Rename folder",
      onclick: () => this.editFolder(folder),
    }, "✎");
    const remove = h("button", {
      type: "button",
      class: "row-action delete-folder",
      "aria-label": `Delete folder: ${folder.name}`,
      title: "Delete folder (its chats stay)",
      onclick: () => this.deleteFolder(folder),
    }, "×");
    const body = !open ? []
      : !loaded ? [h("p", { class: "muted" }, "Loading…")]
      : loaded.chats.length === 0 ? [h("p", { class: "muted folder-empty" }, "No chats in this folder")]
      : [h("ul", {}, ...loaded.chats.map((chat) => this.row(chat)))];
    if (open && loaded?.hasMore) {
      body.push(h("button", {
        type: "button",
        class: "load-more",
        onclick: async () => {
          await this.loadFolder(folder.id, loaded.chats.at(-1).cursor);
          this.render();
        },
      }, "Load more…"));
    }
    const head = this.editingFolder === folder.id
      ? h("div", { class: "folder-head" }, this.folderForm(folder))
      : h("div", { class: "folder-head" }, toggle, rename, remove);
    const element = h("div", { class: "folder", "data-folder-id": folder.id }, head, ...body);
    this.acceptDrops(element, folder.id);
    return element;
  }

  async toggleFolder(folderId) {
    if (this.openFolders.has(folderId)) {
      this.openFolders.delete(folderId);
      this.render();
      return;
    }
    this.openFolders.add(folderId);
    this.render();
    await this.act("The folder could not be opened", () => this.loadFolder(folderId), false);
  }

  /** Makes `element` take chats dropped on it into `folderId` (null: none). */
  acceptDrops(element, folderId) {
    element.addEventListener("dragover", (event) => {
      if (event.dataTransfer.types.includes(DRAGGED_CHAT)) event.preventDefault();
    });
    element.addEventListener("drop", (event) => {
      const chatId = event.dataTransfer.getData(DRAGGED_CHAT);
      if (!chatId) return;
      event.preventDefault();
      event.stopPropagation();
      const chat = this.known(chatId);
      if (chat && (chat.folderId ?? null) !== folderId) this.file(chat, folderId);
    });
  }

  /**
   * Runs a change, then (when `reload`) loads everything again; a failure
   * is shown above the list as `what: reason`.
   */
  async act(what, change, reload = true) {
    try {
      await change();
      this.error = null;
    } catch (error) {
      this.error = `${what}: ${error.message}`;
    }
    if (reload) await this.refresh();
    else this.render();
  }

  showArchive(archive) {
    this.archive = archive;
    this.chats = [];
    this.hasMore = false;
    this.menuId = null;
    this.refresh();
  }

  pin(chat, pinned) {
    return this.act(pinned ? "The chat could not be pinned" : "The chat could not be unpinned",
      () => api.setPinned(chat.id, pinned));
  }

  archiveChat(chat, archived) {
    return this.act(archived ? "The chat could not be archived" : "The chat could not be restored",
      () => api.setArchived(chat.id, archived));
  }

  file(chat, folderId) {
    return this.act("The chat could not be moved", async () => {
      await api.fileChat(chat.id, folderId);
      if (folderId) this.openFolders.add(folderId);
    });
  }

  /** Names a folder in place: a new one (`folder` null) or this one. */
  editFolder(folder) {
    this.editingFolder = folder?.id ?? "new";
    this.render();
    this.list.querySelector(".folder-name-input")?.select();
  }

  /**
   * A folder's name as a text field: Enter (or leaving the field) saves it,
   * Escape gives up.
   */
  folderForm(folder) {
    const input = h("input", {
      type: "text",
      class: "folder-name-input",
      value: folder?.name ?? "",
      placeholder: "Folder name",
      maxlength: String(MAX_FOLDER_NAME_CHARS),
      "aria-label": folder ? "New name of the folder" : "Name of the new folder",
    });
    let finished = false;
    const finish = (save) => {
      if (finished) return;
      finished = true;
      this.editingFolder = null;
      const name = input.value.trim();
      if (!save || !name || name === folder?.name) return this.render();
      return folder
        ? this.act("The folder could not be renamed", () => api.renameFolder(folder.id, name))
        : this.act("The folder could not be created", () => api.createFolder(name));
    };
    return inPlaceForm(input, finish, "rename-form folder-form");
  }

  deleteFolder(folder) {
    this.confirm(`Delete the folder “${folder.name}”? Its chats stay, in your chat list.`, () =>
      this.act("The folder could not be deleted", async () => {
        await api.deleteFolder(folder.id);
        this.openFolders.delete(folder.id);
        this.folderChats.delete(folder.id);
      }));
  }

  /** The chat's menu: pin, file, archive. */
  menu(chat) {
    const item = (action, label, onclick, folderId) => h("button", {
      type: "button",
      role: "menuitem",
      class: "menu-item",
      "data-action": action,
      "data-folder-id": folderId,
      onclick: () => {
        this.menuId = null;
        onclick();
      },
    }, label);
    const items = [];
    if (!chat.archived) {
      items.push(chat.pinned
        ? item("unpin", "Unpin", () => this.pin(chat, false))
        : item("pin", "Pin", () => this.pin(chat, true)));
    }
    for (const folder of this.folders) {
      if (folder.id === chat.folderId) continue;
      items.push(item("file", `Move to “${folder.name}”`, () => this.file(chat, folder.id), folder.id));
    }
    if (chat.folderId) items.push(item("unfile", "Remove from folder", () => this.file(chat, null)));
    items.push(chat.archived
      ? item("restore", "Restore from archive", () => this.archiveChat(chat, false))
      : item("archive", "Archive", () => this.archiveChat(chat, true)));
    return h("div", { class: "row-menu", role: "menu", "aria-label": `Actions for chat: ${chat.title || "Untitled chat"}` }, ...items);
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
    const menuOpen = this.menuId === chat.id;
    const more = h("button", {
      type: "button",
      class: "row-action more",
      "aria-label": `More actions for chat: ${title}`,
      "aria-haspopup": "menu",
      "aria-expanded": String(menuOpen),
      title: "Pin, move to a folder, archive",
      onclick: () => {
        this.menuId = menuOpen ? null : chat.id;
        this.render();
      },
    }, "⋯");
    const row = h("li", {
      class: rowClass,
      "data-chat-id": chat.id,
      draggable: this.ephemeral ? undefined : "true",
      ondragstart: (event) => {
        event.dataTransfer.setData(DRAGGED_CHAT, chat.id);
        event.dataTransfer.effectAllowed = "move";
      },
    }, link, visibility, more, rename, remove);
    if (menuOpen) row.append(this.menu(chat));
    return row;
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
    return inPlaceForm(input, finish, "rename-form");
  }

  confirmDelete(chat) {
    const text = `Delete “${chat.title || "Untitled chat"}”? This cannot be undone. Ratings already sent to MLflow stay there.`;
    this.confirm(text, async () => {
      try {
        await api.deleteChat(chat.id);
        const others = (chats) => chats.filter((known) => known.id !== chat.id);
        this.chats = others(this.chats);
        this.pinned = others(this.pinned);
        for (const folder of this.folderChats.values()) folder.chats = others(folder.chats);
        this.error = null;
        this.deleted(chat.id);
      } catch (error) {
        this.error = `The chat could not be deleted: ${error.message}`;
      }
      this.render();
    });
  }

  confirmDeleteAll() {
    const text = "Delete all your chats, archived and pinned ones too? This cannot be undone. Ratings already sent to MLflow stay there.";
    this.confirm(text, () => this.act("Your chats could not be deleted", async () => {
      await api.deleteAllChats();
      this.openFolders.clear();
      this.folderChats.clear();
      if (this.activeId) this.deleted(this.activeId);
    }));
  }

  /** Asks `text` in the page's delete dialog; runs `confirmed` on "Delete". */
  confirm(text, confirmed) {
    document.getElementById("confirm-delete-text").textContent = text;
    this.dialog.returnValue = "";
    this.dialog.addEventListener("close", () => {
      if (this.dialog.returnValue === "delete") confirmed();
    }, { once: true });
    this.dialog.showModal();
  }
}
