// /demo/login (serve --demo only): pick a demo user; the server makes the
// session (an HttpOnly cookie) and the page moves on to the demo live
// (the creator: to the studio; the brand: to the brand page).
import { el, loadSession, loadStrings, setText, shell, t } from '/ui/common.js';

async function main() {
  await loadStrings();
  await loadSession();
  shell();
  const status = document.getElementById('login-status');
  for (const b of document.querySelectorAll('button[data-user]')) {
    b.setAttribute('aria-label', t('login.as', { user: b.dataset.user }));
    b.addEventListener('click', async () => {
      status.classList.remove('error');
      try {
        const r = await fetch('/demo/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          credentials: 'same-origin',
          body: JSON.stringify({ user: b.dataset.user }),
        });
        const v = await r.json();
        if (!r.ok) throw new Error(v.message || r.status);
        setText(status, t('login.done', { user: v.user }));
        // The creator goes to the studio, the brand to its page, viewers to the demo live.
        const next = { creator: '/studio', brand: '/brand' }[v.role] || '/live/demo';
        setTimeout(() => location.assign(next), 400);
      } catch (e) {
        status.classList.add('error');
        status.replaceChildren(el('span', {}, String(e.message || e)));
      }
    });
  }
  // The buttons work from here on (tests wait for this).
  document.body.dataset.ready = 'true';
}

main();
