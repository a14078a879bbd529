// glimpse web page: search (typed, spoken or drawn), similar images, uploads.
// Plain ES module, no build step. Everything that comes from the server or from a
// file name reaches the page through textContent and DOM properties, never as markup.

const KEY_STORAGE = "glimpse.apiKey";
const PAGE_SIZE = 24;
const SIMILAR_SIZE = 12;
const UPLOADS_AT_ONCE = 2;
const MEDIA_POLL_MS = 1000;
const MEDIA_POLL_LIMIT_MS = 5 * 60 * 1000;
const VOICE_POLL_MS = 500;
const VOICE_POLL_LIMIT_MS = 2 * 60 * 1000;
const EXAMPLE_COUNT = 5;
const RECORDING_TYPES = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"];
const DRAW_STROKE = 10; // px on the 320-px pad: about a marker's line at thumbnail size
const DRAW_INK = "#111111";
const DRAW_PAPER = "#ffffff"; // the model sees a white sheet, as photos of drawings show
const DRAW_SEARCH_DELAY_MS = 600; // after the last stroke: one search per pause, not per stroke

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- small helpers

/** An element with attributes/properties and children (strings become text nodes). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function svgIcon(paths, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "icon");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  for (const d of paths) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

const speakerIcon = () =>
  svgIcon(
    ["M4 9h4l5-4v14l-5-4H4z", "M16 8.5a5 5 0 0 1 0 7", "M18.5 6a8.5 8.5 0 0 1 0 12"],
    "Voice note",
  );
const fileIcon = () => svgIcon(["M6 3h8l4 4v14H6z", "M14 3v4h4"], "File");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function formatClock(seconds) {
  const whole = Math.floor(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** The file name a person gave, from a bucket key (uploads add YYYY/MM/<8 hex>-). */
function displayName(key) {
  const uploaded = /(?:^|\/)\d{4}\/\d{2}\/[0-9a-f]{8}-([^/]+)$/.exec(key);
  if (uploaded) return uploaded[1];
  return key.split("/").pop() || key;
}

/** Captions can be long (a sentence plus a description): the first sentence leads. */
function splitCaption(caption) {
  const text = (caption || "").trim();
  const match = /^(.+?[.!?])\s+(\S[\s\S]*)$/.exec(text);
  return match ? { lead: match[1], rest: match[2] } : { lead: text, rest: "" };
}

/** Only same-origin paths the API hands out; anything else is rebuilt from the id. */
function apiPath(url, fallback) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") ? url : fallback;
}

function setStatus(node, text, kind = "info") {
  node.textContent = text;
  node.classList.toggle("error", kind === "error");
  node.classList.toggle("busy", kind === "busy");
}

// ---------------------------------------------------------------- API access

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage disabled: the key lives only as long as the page
  }
}

let memoryKey = "";

function currentKey() {
  return storedKey() || memoryKey;
}

function saveKey(key) {
  memoryKey = key;
  try {
    localStorage.setItem(KEY_STORAGE, key);
  } catch {
    // storage disabled: memoryKey keeps it for this page
  }
}

/** `glimpse up` prints the page as /#key=…: keep the key, then drop it from the address
 * bar so it is not bookmarked, shared or left in the history. A link with a different key
 * than the saved one asks first: anyone can send a link, and uploads would then go out
 * under their key. */
function takeKeyFromUrl() {
  const params = new URLSearchParams(location.hash.slice(1));
  const key = (params.get("key") || "").trim();
  if (!key) return;
  history.replaceState(history.state, "", location.pathname + location.search);
  const saved = currentKey();
  if (saved && saved !== key) {
    const replace = window.confirm(
      "This link carries a different API key than the one saved in this browser. " +
        "Use the key from the link instead? (Cancel keeps the saved key.)",
    );
    if (!replace) return;
  }
  saveKey(key);
}

function authHeaders() {
  const key = currentKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** The words of an RFC 9457 problem (detail, else title), else the HTTP status. */
function problemText(status, body, statusText = "") {
  if (body && typeof body === "object") {
    const words = body.detail || body.title;
    if (words) return String(words);
  }
  return status ? `The server answered ${status} ${statusText}`.trim() : "No answer";
}

async function request(url, options = {}) {
  let response;
  try {
    response = await fetch(url, {
      ...options,
      headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
    });
  } catch {
    throw new ApiError(0, "The server could not be reached. Is glimpse running?");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      problemText(response.status, body, response.statusText),
      body,
    );
  }
  return { status: response.status, body };
}

const config = {
  maxUploadBytes: null, // null until /v1/config answers: the server still checks
  voiceMaxBytes: 5 * 1024 * 1024,
  voiceMaxSeconds: 30,
  imageSearch: true, // false: the server has search by image off; the pad is hidden
  imageMaxBytes: 2 * 1024 * 1024,
};

async function loadConfig() {
  try {
    const { body } = await request("/v1/config");
    config.maxUploadBytes = body.max_upload_bytes;
    if (body.voice) {
      config.voiceMaxBytes = body.voice.max_bytes ?? config.voiceMaxBytes;
      config.voiceMaxSeconds = body.voice.max_seconds ?? config.voiceMaxSeconds;
    }
    if (body.image_search) {
      config.imageSearch = body.image_search.enabled !== false;
      config.imageMaxBytes = body.image_search.max_bytes ?? config.imageMaxBytes;
    }
    $("draw-panel").hidden = !config.imageSearch;
    $("limit-hint").textContent =
      `Images and audio up to ${formatBytes(config.maxUploadBytes)} each.`;
  } catch {
    $("limit-hint").textContent = "Images and audio files.";
  }
}

// ---------------------------------------------------------------- result cards

function thumbnailFor(hit, name, lead) {
  const box = el("div", { class: "thumb" });
  if (hit.kind === "audio") {
    box.classList.add("placeholder");
    box.append(speakerIcon());
    return box;
  }
  const fallback = `/v1/media/${encodeURIComponent(hit.id)}/thumbnail`;
  if (!hit.thumbnail_url) {
    box.classList.add("placeholder");
    box.append(fileIcon());
    return box;
  }
  const img = el("img", { loading: "lazy", decoding: "async" });
  img.alt = lead || name;
  img.addEventListener("error", () => {
    box.classList.add("placeholder");
    img.replaceWith(fileIcon());
  });
  img.src = apiPath(hit.thumbnail_url, fallback);
  box.append(img);
  return box;
}

function scoreText(hit) {
  const kind = hit.weak ? "weak match" : "match";
  if (typeof hit.similarity === "number") return `${Math.round(hit.similarity * 100)}% ${kind}`;
  return hit.weak ? "weak word match" : "word match";
}

function captionBlock(text, fallback) {
  const { lead, rest } = splitCaption(text);
  const block = el("div", { class: "caption-block" });
  block.append(el("p", { class: "caption", text: lead || fallback }));
  if (rest) {
    block.append(el("details", {}, el("summary", { text: "More" }), el("p", { text: rest })));
  }
  return block;
}

// Why a hit matched: the parts of its text holding the query's words, the picture
// itself ("image": it looks like what the words say), else the caption's meaning.
function whyText(hit, why = null) {
  if (why) return why; // said by the search itself (a drawing: "Looks like your drawing")
  const parts = hit.matched_in || [];
  const inText = parts.filter((part) => part !== "image");
  const looks = parts.includes("image");
  if (inText.length && looks) {
    return `Your words are in its ${inText.join(", ")}, and the picture looks like them`;
  }
  if (inText.length) return `Your words are in its ${inText.join(", ")}`;
  if (looks) return "The picture looks like what you typed";
  return typeof hit.similarity === "number" ? "Close in meaning to your words" : "";
}

// What was read in the image (OCR) and its colours: cues the caption may not hold.
function cuesBlock(hit, why = null) {
  const block = el("div", { class: "cues" });
  if (hit.text_in_image) {
    const words = hit.text_in_image;
    const shown = words.length > 160 ? `${words.slice(0, 160)}…` : words;
    const text = el("p", { class: "text-in-image", text: `Text in image: “${shown}”` });
    text.title = words;
    block.append(text);
  }
  if ((hit.colours || []).length) {
    block.append(el("p", { class: "colours", text: `Colours: ${hit.colours.join(", ")}` }));
  }
  const because = whyText(hit, why);
  if (because) block.append(el("p", { class: "why", text: because }));
  return block;
}

// Tags of the user's own label sets (`glimpse labels`): "7 · 93%"; an unsure one is
// drawn dashed with a question mark, a corrected one says so in its title.
function labelChips(hit) {
  const tags = hit.custom_labels || [];
  if (!tags.length) return null;
  const row = el("p", { class: "custom-labels" });
  for (const tag of tags) {
    const pct = `${Math.round(tag.confidence * 100)}%`;
    const chip = el("span", {
      class: tag.unsure ? "label-chip unsure" : "label-chip",
      text: tag.unsure ? `${tag.label}? · ${pct}` : `${tag.label} · ${pct}`,
    });
    chip.title = `${tag.label_set}: ${tag.label}, ${pct} sure` +
      (tag.corrected ? " (corrected by a person)" : tag.unsure ? " (unsure: a guess)" : "");
    row.append(chip);
  }
  return row;
}

function resultCard(hit, why = null) {
  const name = displayName(hit.key || "");
  const text = hit.transcript || hit.caption || "";
  const { lead } = splitCaption(text);
  // Weak matches (nearer the query than most of the library, but not standing out) are
  // shown apart: a guess should not look like an answer.
  const card = el("li", {
    class: hit.weak ? "card weak" : "card",
    "data-media-id": hit.id,
    "data-kind": hit.kind,
  });
  card.append(thumbnailFor(hit, name, lead));
  const body = el("div", { class: "card-body" });
  body.append(captionBlock(text, hit.kind === "audio" ? "Voice note" : "No caption yet"));
  body.append(cuesBlock(hit, why));
  const chips = labelChips(hit);
  if (chips) body.append(chips);
  if (hit.kind === "audio") {
    const player = el("audio", { controls: true, preload: "none" });
    player.src = `/v1/media/${encodeURIComponent(hit.id)}/original`;
    body.append(player);
  }
  const score = el("span", { class: "score", text: scoreText(hit) });
  score.title = hit.weak
    ? "A guess: closer to your words than most of the library, but nothing to be sure of"
    : `rank score ${Number(hit.score).toFixed(4)}`;
  const nameNode = el("span", { class: "name", text: name });
  nameNode.title = hit.key || "";
  body.append(el("p", { class: "meta" }, nameNode, score));
  if (hit.kind === "image") {
    const more = el("button", { type: "button", class: "secondary small", text: "More like this" });
    more.setAttribute("aria-label", `More like ${name}`);
    more.addEventListener("click", () => showSimilar(hit, name, more));
    body.append(more);
  }
  card.append(body);
  return card;
}

function renderHits(list, hits, { append = false, why = null } = {}) {
  if (!append) list.replaceChildren();
  list.append(...hits.map((hit) => resultCard(hit, why)));
}

// ---------------------------------------------------------------- search

const search = { q: "", cursor: null, token: 0 };

function describeCount(count, q, more, weak = 0) {
  if (count === 0) return `No matches for “${q}”. Try other words, or one of the examples.`;
  const plural = count === 1 ? "result" : "results";
  const guesses = weak === 0 ? "" : weak === count ? " (all weak matches)" : ` (${weak} weak)`;
  return `${count}${more ? "+" : ""} ${plural} for “${q}”${guesses}.`;
}

function showResults(q, body, { append = false, heard = null, why = null } = {}) {
  const list = $("results");
  renderHits(list, body.hits || [], { append, why });
  search.q = q;
  search.cursor = body.next_cursor || null;
  $("more-results").hidden = !search.cursor;
  const count = list.children.length;
  const weak = list.querySelectorAll(".card.weak").length;
  setStatus($("search-status"), describeCount(count, q, Boolean(search.cursor), weak));
  list.classList.toggle("empty", count === 0);
  const said = $("you-said");
  said.hidden = heard === null;
  if (heard !== null) said.textContent = `You said: “${heard}”`;
}

async function runSearch(text, { cursor = null } = {}) {
  const q = text.trim();
  if (!q) {
    setStatus($("search-status"), "Type what you are looking for first.", "error");
    $("search-input").focus();
    return;
  }
  const token = ++search.token; // a slower, older answer must not replace a newer one
  setStatus($("search-status"), cursor ? "Loading more…" : `Searching for “${q}”…`, "busy");
  const params = new URLSearchParams({ q, limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  try {
    const { body } = await request(`/v1/search?${params}`);
    if (token !== search.token) return;
    showResults(body.query || q, body, { append: Boolean(cursor) });
  } catch (error) {
    if (token !== search.token) return;
    showSearchError(error);
  }
}

function showSearchError(error) {
  if (error.status === 401 || error.status === 403) {
    showKeyPanel("Searching needs an API key on this server.", error.message);
  }
  setStatus($("search-status"), `Search failed: ${error.message}`, "error");
}

// "Try:" chips name what this library holds (its most frequent confident labels); an
// empty library, or one the page may not read yet, shows none.
async function renderExamples() {
  const list = $("examples");
  let examples = [];
  try {
    const { body } = await request(`/v1/search/suggestions?limit=${EXAMPLE_COUNT}`);
    examples = body.suggestions || [];
  } catch {
    examples = [];
  }
  list.replaceChildren();
  for (const example of examples) {
    const chip = el("button", { type: "button", class: "chip", text: example });
    chip.addEventListener("click", () => {
      $("search-input").value = example;
      runSearch(example);
    });
    list.append(el("li", {}, chip));
  }
  list.closest(".examples").hidden = examples.length === 0;
}

// ---------------------------------------------------------------- similar images

let similarToken = 0;

async function showSimilar(hit, name, trigger) {
  const token = ++similarToken;
  const section = $("similar-section");
  const heading = $("similar-heading");
  section.hidden = false;
  section.dataset.sourceId = hit.id;
  heading.textContent = `Looks like ${name}`;
  $("similar").replaceChildren();
  setStatus($("similar-status"), "Finding images that look alike…", "busy");
  section.returnFocus = trigger;
  heading.focus();
  section.scrollIntoView({ behavior: "smooth", block: "start" });
  const url = `/v1/media/${encodeURIComponent(hit.id)}/similar?limit=${SIMILAR_SIZE}`;
  try {
    const { body } = await request(url);
    if (token !== similarToken) return;
    renderHits($("similar"), body.hits || []);
    const count = (body.hits || []).length;
    setStatus(
      $("similar-status"),
      count
        ? `${count} image${count === 1 ? " looks" : "s look"} like ${name}.`
        : `Nothing else looks like ${name} yet.`,
    );
  } catch (error) {
    if (token !== similarToken) return;
    setStatus($("similar-status"), `Could not find similar images: ${error.message}`, "error");
  }
}

function closeSimilar() {
  const section = $("similar-section");
  section.hidden = true;
  if (section.returnFocus && section.returnFocus.isConnected) section.returnFocus.focus();
}

// ---------------------------------------------------------------- uploads

const uploads = { queue: [], active: 0, waitingForKey: [], configReady: null };

function previewFor(file) {
  const box = el("div", { class: "thumb small" });
  if (file.type.startsWith("image/")) {
    const url = URL.createObjectURL(file);
    const img = el("img", { decoding: "async" });
    img.alt = `Preview of ${file.name}`;
    // the decoded picture stays on screen: the object URL can go once it has loaded
    img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    img.addEventListener(
      "error",
      () => {
        URL.revokeObjectURL(url);
        box.classList.add("placeholder");
        img.replaceWith(fileIcon()); // e.g. HEIC, which browsers do not draw
      },
      { once: true },
    );
    img.src = url;
    box.append(img);
  } else {
    box.classList.add("placeholder");
    box.append(file.type.startsWith("audio/") ? speakerIcon() : fileIcon());
  }
  return box;
}

function uploadCard(file) {
  const name = el("p", { class: "name", text: file.name });
  name.title = file.name;
  const status = el("p", { class: "upload-state", text: "Waiting…" });
  const progress = el("progress", { max: "1", value: "0" });
  progress.setAttribute("aria-label", `Upload progress of ${file.name}`);
  const detail = el("div", { class: "upload-detail" });
  const card = el(
    "li",
    { class: "upload", "data-state": "waiting" },
    previewFor(file),
    el(
      "div",
      { class: "upload-body" },
      name,
      el("p", { class: "hint", text: formatBytes(file.size) }),
      status,
      progress,
      detail,
    ),
  );
  return { card, status, progress, detail };
}

function setUploadState(entry, state, text, { announce = false } = {}) {
  entry.ui.card.dataset.state = state;
  entry.ui.status.textContent = text;
  entry.ui.progress.hidden = state !== "uploading";
  if (announce) setStatus($("upload-status"), `${entry.file.name}: ${text}`);
  const finished = ["searchable", "duplicate", "rejected", "failed", "error", "too-big", "slow"];
  if (finished.includes(state)) $("clear-uploads").hidden = false;
}

function tooBigText(size, limit) {
  let sizeText = formatBytes(size);
  let limitText = formatBytes(limit);
  if (sizeText === limitText) {
    // just over the limit: rounded sizes would read "12 MB; the limit is 12 MB"
    sizeText = `${size.toLocaleString("en")} bytes`;
    limitText = `${limit.toLocaleString("en")} bytes (${limitText})`;
  }
  return `Too big to upload: ${sizeText}; the limit is ${limitText}.`;
}

async function addFiles(fileList) {
  const files = Array.from(fileList || []);
  if (!files.length) return;
  await uploads.configReady; // the size check needs the server's limit
  for (const file of files) {
    const entry = { file, ui: uploadCard(file), mediaId: null };
    $("upload-list").prepend(entry.ui.card);
    const limit = config.maxUploadBytes;
    if (limit !== null && file.size > limit) {
      setUploadState(entry, "too-big", tooBigText(file.size, limit), { announce: true });
      continue;
    }
    uploads.queue.push(entry);
  }
  setStatus($("upload-status"), `${files.length} file${files.length === 1 ? "" : "s"} added.`);
  pumpUploads();
}

function pumpUploads() {
  while (uploads.active < UPLOADS_AT_ONCE && uploads.queue.length) {
    const entry = uploads.queue.shift();
    uploads.active += 1;
    uploadOne(entry).finally(() => {
      uploads.active -= 1;
      pumpUploads();
    });
  }
}

/** XMLHttpRequest, not fetch: only XHR reports upload progress. */
function postFile(entry) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/uploads");
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    const key = currentKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const share = event.loaded / event.total;
      entry.ui.progress.value = share;
      entry.ui.status.textContent = `Uploading… ${Math.round(share * 100)}%`;
    });
    xhr.addEventListener("load", () =>
      resolve({ status: xhr.status, body: xhr.response, statusText: xhr.statusText }),
    );
    xhr.addEventListener("error", () => resolve({ status: 0, body: null, statusText: "" }));
    xhr.addEventListener("abort", () => resolve({ status: 0, body: null, statusText: "" }));
    const form = new FormData();
    form.append("files", entry.file, entry.file.name);
    xhr.send(form);
  });
}

async function uploadOne(entry) {
  setUploadState(entry, "uploading", "Uploading… 0%");
  entry.ui.progress.value = 0;
  const { status, body, statusText } = await postFile(entry);
  if (status === 401 || status === 403) {
    uploads.waitingForKey.push(entry);
    setUploadState(entry, "needs-key", "Waiting for an API key.");
    const why = currentKey() ? "The saved API key was refused." : "";
    showKeyPanel(why, problemText(status, body, statusText));
    return;
  }
  if (status !== 202 && status !== 200) {
    const words = status
      ? problemText(status, body, statusText)
      : "The server could not be reached.";
    setUploadState(entry, "error", `Upload failed: ${words}`, { announce: true });
    return;
  }
  const item = body && Array.isArray(body.items) ? body.items[0] : null;
  if (!item) {
    setUploadState(entry, "error", "Upload failed: the server sent no result.", { announce: true });
    return;
  }
  if (item.status === "rejected") {
    setUploadState(entry, "rejected", `Not added: ${item.detail || item.reason}`, {
      announce: true,
    });
    return;
  }
  entry.mediaId = item.id;
  entry.ui.card.dataset.mediaId = item.id;
  setUploadState(entry, "checking", "Uploaded. Checking the file…");
  // not awaited: the upload slot is free for the next file while ingest works on this one
  followMedia(entry, apiPath(item.status_url, `/v1/media/${encodeURIComponent(item.id)}`));
}

/** Polls the media row until ingest (and captioning) has a verdict. */
async function followMedia(entry, url) {
  const started = Date.now();
  while (Date.now() - started < MEDIA_POLL_LIMIT_MS) {
    try {
      const { body } = await request(url);
      if (await settle(entry, body)) return;
    } catch (error) {
      // 404: ingest has not written the row yet; anything else may be a blip
      if (error.status !== 404 && error.status !== 0) {
        setUploadState(entry, "error", `Could not check the file: ${error.message}`, {
          announce: true,
        });
        return;
      }
    }
    await sleep(MEDIA_POLL_MS);
  }
  setUploadState(
    entry,
    "slow",
    "Uploaded; still being processed. It becomes searchable when the workers catch up.",
    { announce: true },
  );
}

/** True once the media row says something final. */
async function settle(entry, media) {
  const why = media.reason_detail || media.reason || "no reason was recorded";
  switch (media.status) {
    case "accepted":
      if (!media.searchable) {
        const doing = media.kind === "audio" ? "transcribing it…" : "describing it…";
        setUploadState(entry, "processing", `Accepted; ${doing}`);
        return false;
      }
      setUploadState(entry, "searchable", "Searchable.", { announce: true });
      if (media.caption || media.transcript) {
        const said = media.transcript ? `“${media.transcript}”` : "";
        entry.ui.detail.replaceChildren(captionBlock(media.caption || said, ""));
      }
      return true;
    case "duplicate":
      setUploadState(
        entry,
        "duplicate",
        `Already in your library as ${await nameOf(media.duplicate_of)}.`,
        { announce: true },
      );
      return true;
    case "rejected":
      setUploadState(entry, "rejected", `Not added: ${why}`, { announce: true });
      return true;
    case "failed":
      setUploadState(entry, "failed", `Processing failed: ${why}`, { announce: true });
      return true;
    case "deleted":
      setUploadState(entry, "failed", "It was deleted from the bucket.", { announce: true });
      return true;
    default:
      setUploadState(entry, "checking", `Checking the file… (${media.status})`);
      return false;
  }
}

async function nameOf(mediaId) {
  if (!mediaId) return "another file";
  try {
    const { body } = await request(`/v1/media/${encodeURIComponent(mediaId)}`);
    return `“${displayName(body.key)}”`;
  } catch {
    return "another file";
  }
}

function clearFinished() {
  const done = ["searchable", "duplicate", "rejected", "failed", "error", "too-big", "slow"];
  for (const card of Array.from($("upload-list").children)) {
    if (done.includes(card.dataset.state)) card.remove();
  }
  $("clear-uploads").hidden = true;
  setStatus($("upload-status"), "");
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("file-input");
  $("choose-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = ""; // choosing the same file again must fire change again
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault(); // without this the browser opens the dropped file
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
  // a file dropped next to the zone would otherwise replace the page
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

// ---------------------------------------------------------------- API key prompt

/** "Uploads need an API key: …" with the commands set as code, then why, then what the
 * server said (all as text nodes: the server's words are never markup). */
function showKeyPanel(lead, serverSaid) {
  const panel = $("key-panel");
  const code = (text) => el("code", { text });
  $("key-message").replaceChildren(
    ...(lead ? [`${lead} `] : []),
    "Uploads need an API key: open the link ",
    code("glimpse up"),
    " printed, or paste a key from ",
    code("glimpse keys create"),
    ".",
    ...(serverSaid ? [` (The server said: ${serverSaid})`] : []),
  );
  const wasHidden = panel.hidden;
  panel.hidden = false;
  if (wasHidden) $("key-input").focus();
}

function onKeySubmit(event) {
  event.preventDefault();
  const input = $("key-input");
  const key = input.value.trim();
  if (!key) return;
  saveKey(key);
  input.value = "";
  $("key-panel").hidden = true;
  const retry = uploads.waitingForKey.splice(0);
  setStatus(
    $("upload-status"),
    retry.length ? `Key saved. Retrying ${retry.length} upload(s)…` : "Key saved.",
  );
  uploads.queue.push(...retry);
  pumpUploads();
}

// ---------------------------------------------------------------- voice search

const voice = { recorder: null, stream: null, chunks: [], timer: null, stopAt: null, busy: false };

function pickRecordingType() {
  return RECORDING_TYPES.find((type) => MediaRecorder.isTypeSupported(type)) || "";
}

function microphoneProblem(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return (
        "Microphone access was denied. Allow the microphone for this page " +
        "in the browser's site settings, or type your search."
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Connect one, or type your search.";
    case "NotReadableError":
      return "The microphone could not be started (another app may be using it).";
    default:
      return `The microphone could not be started: ${(error && error.message) || "unknown error"}.`;
  }
}

function voiceUnsupported() {
  if (!window.isSecureContext) {
    return "Recording needs a secure page: open glimpse over https, or at 127.0.0.1 / localhost.";
  }
  if (
    !navigator.mediaDevices ||
    !navigator.mediaDevices.getUserMedia ||
    typeof MediaRecorder === "undefined"
  ) {
    return "This browser cannot record audio. Type your search instead.";
  }
  return null;
}

function setRecordButton(recording) {
  const button = $("record-button");
  button.setAttribute("aria-pressed", String(recording));
  button.classList.toggle("recording", recording);
  $("record-label").textContent = recording ? "Stop" : "Record";
}

async function toggleRecording() {
  if (voice.recorder) {
    stopRecording();
    return;
  }
  if (voice.busy) return;
  const unsupported = voiceUnsupported();
  if (unsupported) {
    setStatus($("voice-status"), unsupported, "error");
    return;
  }
  await startRecording();
}

async function startRecording() {
  voice.busy = true;
  setStatus($("voice-status"), "Asking for the microphone…", "busy");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    voice.busy = false;
    setStatus($("voice-status"), microphoneProblem(error), "error");
    return;
  }
  const type = pickRecordingType();
  let recorder;
  try {
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    voice.busy = false;
    setStatus($("voice-status"), `Recording is not possible here: ${error.message}`, "error");
    return;
  }
  voice.stream = stream;
  voice.recorder = recorder;
  voice.chunks = [];
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data && event.data.size) voice.chunks.push(event.data);
  });
  recorder.addEventListener("stop", () => finishRecording(recorder.mimeType || type));
  const started = performance.now();
  const tick = () => {
    const seconds = (performance.now() - started) / 1000;
    setStatus(
      $("voice-status"),
      `Recording… ${formatClock(seconds)} (press again to stop)`,
      "busy",
    );
  };
  recorder.start(1000);
  setRecordButton(true);
  tick();
  voice.timer = setInterval(tick, 250);
  // the server refuses longer clips: stop in time rather than upload in vain
  voice.stopAt = setTimeout(stopRecording, config.voiceMaxSeconds * 1000);
}

function stopRecording() {
  clearInterval(voice.timer);
  clearTimeout(voice.stopAt);
  const recorder = voice.recorder;
  voice.recorder = null;
  setRecordButton(false);
  if (recorder && recorder.state !== "inactive") recorder.stop();
}

async function finishRecording(type) {
  if (voice.stream) voice.stream.getTracks().forEach((track) => track.stop());
  voice.stream = null;
  const clip = new Blob(voice.chunks, { type: type || "audio/webm" });
  voice.chunks = [];
  try {
    if (!clip.size) {
      setStatus(
        $("voice-status"),
        "Nothing was recorded. Check the microphone and try again.",
        "error",
      );
      return;
    }
    if (clip.size > config.voiceMaxBytes) {
      setStatus(
        $("voice-status"),
        `The recording is too long (${formatBytes(clip.size)}). Keep it short.`,
        "error",
      );
      return;
    }
    await searchByVoice(clip);
  } finally {
    voice.busy = false;
  }
}

async function searchByVoice(clip) {
  setStatus($("voice-status"), "Transcribing…", "busy");
  $("record-button").disabled = true;
  search.token += 1; // a typed search still under way must not overwrite this answer
  try {
    const { body } = await request(`/v1/search/voice?limit=${PAGE_SIZE}`, {
      method: "POST",
      body: clip,
      headers: { "Content-Type": clip.type },
    });
    const answer = body.status === "pending" ? await pollVoice(body) : body;
    if (answer.status === "failed") {
      const words = answer.detail || answer.reason || "the recording could not be transcribed";
      setStatus($("voice-status"), `Voice search failed: ${words}.`, "error");
      return;
    }
    const heard = (answer.transcript || "").trim();
    if (!heard) {
      setStatus(
        $("voice-status"),
        "No speech was heard. Try again, a little closer to the microphone.",
        "error",
      );
      return;
    }
    setStatus($("voice-status"), "");
    $("search-input").value = heard;
    showResults(heard, answer, { heard });
  } catch (error) {
    const words =
      error.status === 404 || error.status === 405
        ? "voice search is not available on this server"
        : error.message;
    setStatus($("voice-status"), `Voice search failed: ${words}`, "error");
  } finally {
    $("record-button").disabled = false;
  }
}

async function pollVoice(pending) {
  const url = apiPath(pending.status_url, `/v1/queries/${encodeURIComponent(pending.query_id)}`);
  const started = Date.now();
  while (Date.now() - started < VOICE_POLL_LIMIT_MS) {
    await sleep(VOICE_POLL_MS);
    const { body } = await request(url);
    if (body.status === "done" || body.status === "failed") return body;
  }
  return { status: "failed", detail: "transcribing took too long; try again" };
}

// ---------------------------------------------------------------- drawing pad

// Pointer events: one code path for mouse, pen and touch (touch-action: none in the
// stylesheet keeps a finger drawing instead of scrolling). The pad keeps a fixed
// 320 x 320 sheet whatever its size on screen; the server makes its thumbnail from it.
const pad = { strokes: 0, pointer: null, last: null, timer: null, token: 0 };

function padContext() {
  return $("draw-pad").getContext("2d");
}

function clearPad() {
  const canvas = $("draw-pad");
  const ctx = padContext();
  ctx.fillStyle = DRAW_PAPER;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  pad.strokes = 0;
  clearTimeout(pad.timer);
  pad.token += 1; // a search of the old drawing must not show up after this
  showDrawingLabel(null);
  setStatus($("draw-status"), "");
}

/** A pen draws thinner or thicker with pressure; mouse and touch report 0.5 or 0. */
function strokeWidth(event) {
  if (event.pointerType !== "pen" || !(event.pressure > 0)) return DRAW_STROKE;
  return DRAW_STROKE * (0.5 + event.pressure);
}

/** Where an event is on the sheet, in the canvas's own pixels. */
function padPoint(event) {
  const canvas = $("draw-pad");
  const box = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * canvas.width) / box.width,
    y: ((event.clientY - box.top) * canvas.height) / box.height,
    width: strokeWidth(event),
  };
}

function drawSegment(from, to) {
  const ctx = padContext();
  ctx.strokeStyle = DRAW_INK;
  ctx.fillStyle = DRAW_INK;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = to.width;
  if (from.x === to.x && from.y === to.y) {
    ctx.beginPath(); // a tap leaves a dot
    ctx.arc(to.x, to.y, to.width / 2, 0, Math.PI * 2);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

function onPadDown(event) {
  if (pad.pointer !== null || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  const canvas = $("draw-pad");
  canvas.setPointerCapture(event.pointerId); // strokes that leave the pad still end
  pad.pointer = event.pointerId;
  pad.last = padPoint(event);
  drawSegment(pad.last, pad.last);
  clearTimeout(pad.timer);
}

function onPadMove(event) {
  if (event.pointerId !== pad.pointer) return;
  event.preventDefault();
  // coalesced events: every point the device reported since the last frame, so fast
  // strokes stay smooth curves instead of straight chords
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const each of events.length ? events : [event]) {
    const point = padPoint(each);
    drawSegment(pad.last, point);
    pad.last = point;
  }
}

function onPadUp(event) {
  if (event.pointerId !== pad.pointer) return;
  pad.pointer = null;
  pad.last = null;
  pad.strokes += 1;
  $("draw-pad").dataset.strokes = String(pad.strokes); // tests read it
  clearTimeout(pad.timer);
  pad.timer = setTimeout(searchDrawing, DRAW_SEARCH_DELAY_MS);
}

function padImage() {
  return new Promise((resolve) => $("draw-pad").toBlob(resolve, "image/png"));
}

// ---- label prediction: when a label set is active (`glimpse labels activate`), the
// drawing's top label is shown next to the pad: "7, 93 %"; an unsure one says so.
function showDrawingLabel(prediction) {
  const out = $("draw-label");
  if (!prediction) {
    out.value = "";
    out.hidden = true;
    return;
  }
  const pct = `${Math.round(prediction.confidence * 100)} %`;
  out.value = prediction.unsure ? `${prediction.label}?, ${pct} (unsure)` : `${prediction.label}, ${pct}`;
  out.title = `${prediction.labelSet}: the label predicted for your drawing, with its confidence`;
  out.hidden = false;
}

// The first active label set, asked again for each drawing: one may be activated while
// the page is open.
async function activeLabelSet() {
  try {
    const { body } = await request("/v1/labels");
    const active = (body.label_sets || []).find((set) => set.active);
    return active ? active.name : null;
  } catch {
    return null; // no prediction is no reason to fail the search
  }
}

async function predictDrawing(bytes, token) {
  const name = await activeLabelSet();
  let prediction = null;
  if (name) {
    try {
      const { body } = await request(`/v1/labels/${encodeURIComponent(name)}/predict?top=1`, {
        method: "POST",
        body: bytes,
        headers: { "Content-Type": "image/png" },
      });
      const [top] = body.labels || [];
      if (top) prediction = { ...top, unsure: body.unsure, labelSet: body.label_set };
    } catch {
      prediction = null;
    }
  }
  if (token === pad.token) showDrawingLabel(prediction);
}

async function searchDrawing() {
  clearTimeout(pad.timer);
  if (!pad.strokes) {
    setStatus($("draw-status"), "Draw something first.", "error");
    return;
  }
  const token = ++pad.token;
  const searchToken = ++search.token; // a typed search under way must not overwrite this
  setStatus($("draw-status"), "Searching for your drawing…", "busy");
  const png = await padImage();
  if (!png || png.size > config.imageMaxBytes) {
    setStatus($("draw-status"), "The drawing could not be turned into a picture.", "error");
    return;
  }
  // the bytes, not the Blob: DevTools (and so the browser tests) see a Blob body as empty
  const bytes = await png.arrayBuffer();
  predictDrawing(bytes, token); // beside the search, not before it
  try {
    const { body } = await request(`/v1/search/image?limit=${PAGE_SIZE}&kind=image`, {
      method: "POST",
      body: bytes,
      headers: { "Content-Type": "image/png" },
    });
    if (token !== pad.token || searchToken !== search.token) return;
    const count = (body.hits || []).length;
    setStatus(
      $("draw-status"),
      count ? `${count} image${count === 1 ? "" : "s"} look like your drawing.` : "",
    );
    showResults("your drawing", body, { why: "Looks like your drawing" });
  } catch (error) {
    if (token !== pad.token) return;
    const words =
      error.status === 404 || error.status === 405
        ? "search by drawing is not available on this server"
        : error.message;
    if (error.status === 401 || error.status === 403) {
      showKeyPanel("Searching needs an API key on this server.", error.message);
    }
    setStatus($("draw-status"), `Search by drawing failed: ${words}`, "error");
  }
}

function setUpDrawingPad() {
  const canvas = $("draw-pad");
  clearPad();
  canvas.addEventListener("pointerdown", onPadDown);
  canvas.addEventListener("pointermove", onPadMove);
  canvas.addEventListener("pointerup", onPadUp);
  canvas.addEventListener("pointercancel", onPadUp);
  $("draw-clear").addEventListener("click", clearPad);
  $("draw-search").addEventListener("click", searchDrawing);
}

// ---------------------------------------------------------------- start

function start() {
  takeKeyFromUrl();
  uploads.configReady = loadConfig();
  renderExamples();
  setUpDropZone();
  setUpDrawingPad();
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch($("search-input").value);
  });
  $("more-results").addEventListener("click", () => runSearch(search.q, { cursor: search.cursor }));
  $("record-button").addEventListener("click", toggleRecording);
  $("close-similar").addEventListener("click", closeSimilar);
  $("key-form").addEventListener("submit", onKeySubmit);
  $("clear-uploads").addEventListener("click", clearFinished);
  document.body.dataset.ready = "true"; // tests wait for this
}

start();
