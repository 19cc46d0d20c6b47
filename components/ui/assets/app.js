// The page: who is signed in, which chat the address names, and the wiring
// between the sidebar and the chat view.
import * as api from "./api.js";
import { ChatView } from "./chat.js";
import { h } from "./dom.js";
import { Sidebar } from "./sidebar.js";
import { Transfer } from "./transfer.js";

/** After a new chat's first reply, when to look for its generated title (ms). */
const TITLE_CHECKS = [1500, 5000];

const title = document.getElementById("chat-title");
const visibilityButton = document.getElementById("visibility");
const toggleSidebarButton = document.getElementById("toggle-sidebar");
const scrim = document.getElementById("scrim");

const sidebar = new Sidebar({
  open: (chatId) => navigate(`/chat/${chatId}`),
  deleted: (chatId) => {
    if (chatId === chat.chatId) navigate("/");
  },
  renamed: (summary) => {
    if (summary.id === chat.chatId) showHeader(summary);
  },
});

const chat = new ChatView({
  started: (chatId, isNew) => {
    const path = `/chat/${chatId}`;
    if (location.pathname !== path) history.pushState(null, "", path);
    sidebar.setActive(chatId);
    // A new chat is listed at once, under its first words until it is
    // named: the user may leave it while its reply streams.
    if (isNew) refreshHistory();
  },
  finished: async (chatId, isNew) => {
    await refreshHistory();
    if (isNew) {
      // The title is generated alongside the reply and may land after it.
      for (const delay of TITLE_CHECKS) setTimeout(refreshHistory, delay);
    }
  },
});

const transfer = new Transfer({ imported: () => refreshHistory() });

/** The chat the address names (`/chat/<id>`), or null for a new chat. */
function chatIdInPath() {
  const match = location.pathname.match(/^\/chat\/([^/]+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function navigate(path) {
  if (location.pathname !== path) history.pushState(null, "", path);
  showChatOfPath();
}

async function refreshHistory() {
  await sidebar.refresh();
  const summary = sidebar.known(chat.chatId);
  if (summary) showHeader(summary);
}

/** The header of a chat: its title and, for its owner, its visibility. */
function showHeader(summary, fallbackTitle = "New chat") {
  title.textContent = summary?.title || fallbackTitle;
  document.title = summary?.title ? `${summary.title} · Chat` : "Chat";
  visibilityButton.hidden = !summary;
  if (!summary) return;
  const isPublic = summary.visibility === "public";
  visibilityButton.textContent = isPublic ? "Public" : "Private";
  visibilityButton.setAttribute("aria-pressed", String(isPublic));
  visibilityButton.setAttribute("aria-label",
    isPublic ? "Public: anyone with the link can read it. Make it private" : "Private: only you can read it. Make it public");
  visibilityButton.onclick = () => toggleVisibility(summary);
}

async function toggleVisibility(summary) {
  const wanted = summary.visibility === "public" ? "private" : "public";
  visibilityButton.disabled = true;
  try {
    const visibility = await api.setVisibility(summary.id, wanted);
    sidebar.update(summary.id, { visibility });
    if (summary.id === chat.chatId) showHeader({ ...summary, visibility });
  } catch (error) {
    chat.showNotice(`The visibility could not be changed: ${error.message}`);
  } finally {
    visibilityButton.disabled = false;
  }
}

async function showChatOfPath() {
  setSidebarOpen(false);
  const chatId = chatIdInPath();
  sidebar.setActive(chatId);
  transfer.showChat(chatId);
  if (chatId === null) {
    showHeader(null);
    chat.startNew();
    return;
  }
  // The reply to this chat's first message is streaming right here.
  if (chatId === chat.chatId && chat.streaming) return;
  showHeader(sidebar.known(chatId) ?? null, "");
  const [loaded, own] = await Promise.all([
    chat.open(chatId),
    sidebar.findOwn(chatId).catch(() => null),
  ]);
  if (chatId !== chat.chatId) return; // the user moved on meanwhile
  if (!loaded) return showHeader(null, "Chat");
  // Without a database nobody's chats can be told apart: let them chat on.
  const mayReply = own !== null || sidebar.ephemeral;
  chat.setReadOnly(!mayReply);
  showHeader(own, "Shared chat");
}

function setSidebarOpen(open) {
  document.body.classList.toggle("sidebar-open", open);
  toggleSidebarButton.setAttribute("aria-expanded", String(open));
  scrim.hidden = !open;
}

function showSignedOut(reason) {
  document.querySelector(".layout").replaceChildren(
    h("main", { class: "signed-out" },
      h("h1", {}, "You are not signed in"),
      h("p", {}, reason),
      h("p", { class: "muted" },
        "This app expects its platform gateway to say who you are. For local development, set the app variable dev_user_email.")),
  );
}

async function start() {
  try {
    const session = await api.session();
    document.getElementById("whoami").textContent = session.user.name || session.user.email;
  } catch (error) {
    if (error.status === 401) return showSignedOut(error.message);
    chat.showNotice(error.message);
  }
  document.getElementById("new-chat").addEventListener("click", () => navigate("/"));
  toggleSidebarButton.addEventListener("click", () =>
    setSidebarOpen(!document.body.classList.contains("sidebar-open")));
  scrim.addEventListener("click", () => setSidebarOpen(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") setSidebarOpen(false);
  });
  window.addEventListener("popstate", showChatOfPath);
  await Promise.all([sidebar.refresh(), showChatOfPath()]);
}

start();
