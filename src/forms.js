// Forms marked data-enhance are answered in place: the same urlencoded body the browser would
// post, sent with fetch and asking for JSON. The server function answers with a URL to go to
// (a string, or its redirect), nothing, or an error shown in the form. Without this script
// the same forms post as plain HTML forms.
(() => {
  const TEXT = __TEXTS__;
  const read = (body) => {
    if (typeof body === "string") return [null, TEXT[body] || TEXT.Internal];
    const variant = body && typeof body === "object" ? Object.keys(body)[0] : null;
    const inner = variant ? body[variant] : null;
    if (typeof inner === "string") return [null, inner];
    if (inner && typeof inner.message === "string") return [inner.field || null, inner.message];
    return [null, TEXT[variant] || TEXT.Internal];
  };
  const clear = (form) => {
    form.querySelectorAll("[data-error-for]").forEach((p) => {
      p.textContent = "";
      const input = form.elements[p.dataset.errorFor];
      if (input && input.setAttribute) input.setAttribute("aria-invalid", "false");
    });
    form.querySelectorAll("[data-form-error]").forEach((slot) => {
      slot.textContent = "";
      slot.hidden = true;
      slot.removeAttribute("role");
    });
  };
  const show = (form, field, text) => {
    const at = field ? form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
    if (at) {
      at.textContent = text;
      const input = form.elements[field];
      if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
      return;
    }
    let slot = form.querySelector("[data-form-error]");
    if (!slot) {
      slot = form.appendChild(document.createElement("p"));
      slot.dataset.formError = "";
    }
    slot.textContent = text;
    slot.hidden = false;
    slot.setAttribute("role", "alert");
  };
  // In flight, or answered with a page the browser is now loading: the button says so
  // (its data-busy text) and stays disabled.
  const busy = (form, on) => {
    if (on) form.dataset.busy = "true";
    else delete form.dataset.busy;
    const button = form.querySelector("button[type=submit]");
    if (!button) return;
    button.disabled = on;
    if (!button.dataset.busy) return;
    if (on) button.dataset.label = button.textContent;
    button.textContent = on ? button.dataset.busy : button.dataset.label;
  };
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-enhance")) return;
    event.preventDefault();
    if (form.dataset.busy) return;
    clear(form);
    busy(form, true);
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: "application/json" },
      });
    } catch (_) {
      busy(form, false);
      show(form, null, TEXT.Transport);
      return;
    }
    let body = null;
    try {
      body = JSON.parse(await response.text());
    } catch (_) {}
    if (!response.ok) {
      busy(form, false);
      show(form, ...read(body));
      return;
    }
    const url = response.headers.has("serverfnredirect")
      ? response.headers.get("location")
      : typeof body === "string"
        ? body
        : null;
    // Leaving: the button stays disabled while the browser loads the answer's page.
    if (url) window.location.href = url;
    else busy(form, false);
  });
  // Back from Stripe: a page the browser kept in its cache comes back usable.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) document.querySelectorAll("form[data-busy]").forEach((f) => busy(f, false));
  });
  document.addEventListener("DOMContentLoaded", () => {
    document.body.dataset.enhanced = "true";
  });
})();
