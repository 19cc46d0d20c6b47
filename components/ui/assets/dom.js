// Small DOM helpers shared by the views.

/** An element with attributes (`class`, `aria-*`, `on*` handlers...) and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children);
  return element;
}

const SVG = "http://www.w3.org/2000/svg";

/** The outlines of our icons, on a 24 × 24 grid, drawn with the text's colour. */
const ICONS = {
  "thumb-up": "M7 21H4a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1h3m0 11V10l4-7a2.5 2.5 0 0 1 2.5 2.5V9h5.4a2 2 0 0 1 2 2.3l-1.3 8A2 2 0 0 1 17.6 21z",
};

/**
 * An icon as inline SVG: it renders on machines without an emoji font, and
 * scales and takes its colour from the text around it. Decorative: the
 * control that holds it carries the label.
 */
export function icon(name, { flip = false } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  if (flip) path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}

/**
 * Copies `text` to the clipboard and says so on `button` for a moment. The
 * Clipboard API exists only in secure contexts; on plain http (a LAN
 * address) a selected, hidden text area is copied instead.
 */
export async function copyText(text, button) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    const area = h("textarea", { class: "sr-only", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    copied = document.execCommand("copy");
    area.remove();
  }
  const label = button.textContent;
  button.textContent = copied ? "Copied" : "Copy failed";
  setTimeout(() => { button.textContent = label; }, 1500);
}

/** Placeholder bars shown while something loads. */
export function skeleton(count, className) {
  return Array.from({ length: count }, () => h("div", { class: `skeleton ${className}` }));
}

/**
 * A random (version 4) UUID. `crypto.randomUUID` exists only in secure
 * contexts, and the app may be opened over plain http on a LAN address.
 */
export function uuid() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
