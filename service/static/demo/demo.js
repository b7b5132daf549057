// The demo storefront: what a shop's product page does with /sdk/tryon.js. Its "backend" is
// POST /demo/session, which stands for the shop's own server minting an end-user token.
// Text reaches the DOM through textContent only: titles and error messages are data.
import { TryOnClient, TryOnError } from "/sdk/tryon.js";

const USER_KEY = "tryonDemoUser";
const LABELS = {
  uploading: "Uploading your photo…",
  queued: "Queued…",
  submitting: "Sent to the try-on engine…",
  running: "Rendering…",
  completed: "Done.",
};
const $ = (id) => document.getElementById(id);

// The shopper, as the shop knows them: a random id kept in this browser.
function shopperId() {
  let id = localStorage.getItem(USER_KEY);
  if (!id) {
    id = `demo-${crypto.randomUUID()}`;
    localStorage.setItem(USER_KEY, id);
  }
  return id;
}

async function newSession() {
  const response = await fetch("/demo/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ externalUserId: shopperId() }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new TryOnError({
      code: body?.code ?? `HTTP_${response.status}`,
      message: body?.message ?? "The store could not start a session.",
      status: response.status,
    });
  }
  return body;
}

function showStatus(text) {
  $("status").textContent = text;
}

function showError(err) {
  const box = $("error");
  if (err instanceof TryOnError) {
    const wait = err.retryAfter ? ` Try again in ${Math.ceil(err.retryAfter)} s.` : "";
    box.textContent = `${err.code}: ${err.message}${wait}`;
  } else {
    box.textContent = String(err?.message ?? err);
  }
  box.hidden = false;
}

function markSteps(status) {
  const order = [...document.querySelectorAll("#steps li")].map((li) => li.dataset.status);
  const at = order.indexOf(status === "failed" || status === "canceled" ? "completed" : status);
  document.querySelectorAll("#steps li").forEach((li, i) => {
    li.classList.toggle("done", i < at || (i === at && status === "completed"));
    li.classList.toggle("current", i === at && status !== "completed");
  });
  document.body.dataset.status = status;
}

function renderProducts(products) {
  const list = $("products");
  list.replaceChildren();
  $("products-empty").hidden = products.length > 0;
  for (const [i, product] of products.entries()) {
    const id = `product-${i}`;
    const input = Object.assign(document.createElement("input"), {
      type: "radio",
      name: "product",
      id,
      value: product.id,
      checked: i === 0,
    });
    const label = document.createElement("label");
    label.htmlFor = id;
    const img = Object.assign(document.createElement("img"), { src: product.imageUrl, alt: "" });
    const title = Object.assign(document.createElement("b"), { textContent: product.title });
    const text = Object.assign(document.createElement("small"), { textContent: product.description ?? "" });
    label.append(img, title, text);
    const item = document.createElement("li");
    item.append(input, label);
    list.append(item);
  }
}

function selectedProduct() {
  return document.querySelector("input[name=product]:checked")?.value;
}

function refreshButton(busy) {
  $("tryon").disabled = busy || !selectedProduct() || !$("photo").files?.length;
  $("stop").hidden = !busy;
}

async function start() {
  const session = await newSession();
  renderProducts(session.products);
  const client = new TryOnClient({
    baseUrl: location.origin,
    publishableKey: session.publishableKey,
    token: { token: session.token, expiresAt: session.expiresAt },
    // Before the token expires (or if the gateway rejects it), the shop's backend mints another.
    getToken: async () => {
      const fresh = await newSession();
      return { token: fresh.token, expiresAt: fresh.expiresAt };
    },
  });
  let waiting = null;

  $("photo").addEventListener("change", () => {
    const file = $("photo").files?.[0];
    const preview = $("preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.hidden = !file;
    if (file) preview.src = URL.createObjectURL(file);
    refreshButton(false);
  });
  $("products").addEventListener("change", () => refreshButton(Boolean(waiting)));
  $("stop").addEventListener("click", () => waiting?.abort(new DOMException("Stopped", "AbortError")));

  $("tryon").addEventListener("click", async () => {
    waiting = new AbortController();
    refreshButton(true);
    $("error").hidden = true;
    $("result").hidden = true;
    try {
      const done = await client.tryOn({
        productId: selectedProduct(),
        photo: $("photo").files[0],
        signal: waiting.signal,
        onProgress: ({ status }) => {
          markSteps(status);
          showStatus(LABELS[status] ?? status);
        },
      });
      await showResult(done);
    } catch (err) {
      if (err?.name === "AbortError") {
        showStatus("Stopped waiting (the try-on goes on; start again to see it).");
      } else {
        markSteps(err?.tryOn?.status ?? "failed");
        showStatus("The try-on did not work.");
        showError(err);
      }
    } finally {
      waiting = null;
      refreshButton(false);
    }
  });

  refreshButton(false);
  showStatus("Pick a product and a photo.");
}

function showResult(tryOn) {
  const img = $("result-image");
  return new Promise((resolve, reject) => {
    img.onload = () => {
      $("result").hidden = false;
      $("result").dataset.tryonId = tryOn.id;
      $("result-caption").textContent = `Try-on ${tryOn.id}`;
      document.body.dataset.result = "shown";
      resolve();
    };
    img.onerror = () => reject(new Error("The result image could not be loaded."));
    img.src = tryOn.result.imageUrl;
  });
}

start().catch((err) => {
  showStatus("The store could not start.");
  showError(err);
});
