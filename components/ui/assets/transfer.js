// Export and import of one's history: "Export all" and "Import…" under the
// sidebar, "Export as Markdown" on a chat's page. Exports are plain links the
// browser saves as it downloads them (the server names the file), so even a
// large history never passes through the page's memory.
import * as api from "./api.js";
import { h } from "./dom.js";

/** What the import takes: this app's export, ChatGPT's ZIP or its conversations file. */
const IMPORTABLE = ".jsonl,.json,.zip,application/zip,application/json";

export class Transfer {
  /** `imported()` is called once an import added chats, to list them. */
  constructor({ imported }) {
    this.imported = imported;
    this.markdownLink = document.getElementById("export-markdown");
    this.file = h("input", {
      type: "file",
      accept: IMPORTABLE,
      class: "sr-only",
      tabindex: "-1",
      "aria-hidden": "true",
      onchange: () => this.importChosenFile(),
    });
    this.importButton = h("button", {
      type: "button",
      class: "import",
      onclick: () => this.file.click(),
    }, "Import…");
    this.report = h("dialog", { class: "confirm import-report", "aria-labelledby": "import-report-title" });
    document.getElementById("transfer").append(
      h("a", { href: "/api/export", download: "", class: "export-all" }, "Export all"),
      this.importButton,
      this.file,
    );
    document.body.append(this.report);
  }

  /** Offers the Markdown of the chat on the page (none on a new chat). */
  showChat(chatId) {
    this.markdownLink.hidden = chatId === null;
    if (chatId !== null) this.markdownLink.href = `/api/chat/${encodeURIComponent(chatId)}/export`;
  }

  async importChosenFile() {
    const [file] = this.file.files;
    // Cleared, so choosing the same file again imports it again.
    this.file.value = "";
    if (!file) return;
    this.importButton.disabled = true;
    this.importButton.textContent = "Importing…";
    try {
      const report = await api.importHistory(file);
      this.showReport(file.name, summary(report));
      if (report.chatsImported > 0) this.imported();
    } catch (error) {
      this.showReport(file.name, [h("p", { class: "import-failed" }, error.message)]);
    } finally {
      this.importButton.disabled = false;
      this.importButton.textContent = "Import…";
    }
  }

  showReport(fileName, content) {
    this.report.replaceChildren(
      h("form", { method: "dialog" },
        h("h2", { id: "import-report-title" }, `Import of ${fileName}`),
        ...content,
        h("div", { class: "confirm-actions" }, h("button", { value: "close", autofocus: true }, "Close"))),
    );
    this.report.showModal();
  }
}

/** The report as the user reads it: what came in, what was there, what was not taken and why. */
function summary(report) {
  const lines = [
    h("p", { class: "imported" }, `${count(report.chatsImported, "chat")} imported.`),
    h("p", { class: "already-there" }, `${count(report.chatsAlreadyThere, "chat")} already there.`),
  ];
  if (report.skipped.length > 0) {
    lines.push(
      h("p", {}, `${count(report.skipped.length, "chat")} not imported:`),
      h("ul", { class: "skipped" },
        ...report.skipped.map((skipped) => h("li", {}, `${skipped.source}: ${skipped.reason}`))),
    );
  }
  const leftOut = Object.entries(report.skippedParts);
  if (leftOut.length > 0) {
    lines.push(
      h("p", {}, "Left out of the imported chats:"),
      h("ul", { class: "left-out" },
        ...leftOut.map(([reason, number]) => h("li", {}, `${reason}: ${number}`))),
    );
  }
  return lines;
}

function count(number, noun) {
  return `${number} ${noun}${number === 1 ? "" : "s"}`;
}
