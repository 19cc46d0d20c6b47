// Assistant replies as Markdown: parsed by marked, then sanitised by
// DOMPurify (both vendored unchanged, see vendor/README.md). Raw HTML in a
// reply is shown as text, links open in a new tab without access to this
// page, and only the tags Markdown produces survive, so a reply cannot run
// script or restyle the page (the CSP forbids inline script and style too).
import { Marked } from "./vendor/marked.esm.js";
import DOMPurify from "./vendor/purify.es.mjs";
import { copyText, h } from "./dom.js";

const ALLOWED_TAGS = [
  "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote",
  "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
  "table", "thead", "tbody", "tr", "th", "td",
];
/** `class` carries a code block's language (`language-rust`). */
const ALLOWED_ATTR = ["href", "title", "align", "start", "class"];
/** Links may lead to web pages and mail addresses, nowhere else. */
const SAFE_URL = /^(?:https?:|mailto:)/i;

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const markdown = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    // Raw HTML, block or inline, is shown as the text it is.
    html({ text }) {
      return escapeHtml(text);
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

/**
 * The text as sanitised Markdown, ready to insert: fenced code gets a copy
 * button, tables scroll sideways instead of widening the page. Safe for a
 * text cut anywhere (a reply still streaming): an unclosed construct reads
 * as plain text until the rest arrives.
 */
export function renderMarkdown(text) {
  const html = markdown.parse(text, { async: false });
  const fragment = DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOWED_URI_REGEXP: SAFE_URL,
    RETURN_DOM_FRAGMENT: true,
  });
  // marked separates blocks with newlines, which are not content.
  for (const node of [...fragment.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE && !node.textContent.trim()) node.remove();
  }
  for (const pre of fragment.querySelectorAll("pre")) {
    const copy = h("button", { type: "button", class: "copy copy-code", "aria-label": "Copy code" }, "Copy");
    copy.addEventListener("click", () => copyText(pre.textContent, copy));
    const block = h("div", { class: "code-block" }, copy);
    pre.replaceWith(block);
    block.append(pre);
  }
  for (const table of fragment.querySelectorAll("table")) {
    const scroll = h("div", { class: "table-scroll" });
    table.replaceWith(scroll);
    scroll.append(table);
  }
  return fragment;
}
