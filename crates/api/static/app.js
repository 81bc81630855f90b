// Progressive enhancements only: every page works without this file.
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons next to once-only tokens.
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    if (!field || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(field.value);
      button.textContent = "Copied";
    });
  }
  // The peers table refreshes itself (the page's own URL, same origin).
  const table = document.querySelector("table[data-refresh]");
  if (table) {
    const every = Number(table.dataset.refresh) * 1000;
    setInterval(async () => {
      // Marked as a refresh: it does not keep an unattended session alive.
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Auto-Refresh": "1" },
      });
      if (!response.ok) return;
      const html = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = html.querySelector("table[data-refresh] tbody");
      if (fresh) table.querySelector("tbody").replaceWith(fresh);
    }, every);
  }
});
