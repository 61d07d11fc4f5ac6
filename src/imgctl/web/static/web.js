// imgctl's pages work without this file; it only adds conveniences. No inline script anywhere:
// the Content-Security-Policy allows scripts from this server's /static/ only.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Filters: a changed <select data-autosubmit> submits its form (the URL keeps the filter).
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form && select.form.requestSubmit());
  }

  // Filter forms send only the fields that are set, so a shared URL says just the filter.
  for (const form of document.querySelectorAll("form[data-clean-query]")) {
    form.addEventListener("submit", () => {
      for (const field of form.elements) {
        if (field.name && field.value === "") field.disabled = true;
      }
    });
  }
  // A page shown again from the back/forward cache gets its fields back.
  window.addEventListener("pageshow", () => {
    for (const field of document.querySelectorAll("form[data-clean-query] [disabled]")) {
      field.disabled = false;
    }
  });

  // Copy buttons: <button data-copy="text">; says "Copied" for a moment.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const label = button.textContent;
      try {
        await navigator.clipboard.writeText(button.dataset.copy);
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Copy failed";
      }
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }

  // "/" focuses the first filter field, as on many sites (not while typing in a field).
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    const first = document.querySelector(".filters input, .filters select");
    if (first) { event.preventDefault(); first.focus(); }
  });
});
