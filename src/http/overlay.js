// OBS browser source: /overlay/ROOM?token=JWT. Joins with coalescing (one
// card per combo step), reconnects with jittered backoff and resumes.
const room = decodeURIComponent(location.pathname.split('/').pop());
const token = new URLSearchParams(location.search).get('token') || '';
const feed = document.getElementById('feed'), stats = document.getElementById('stats');
let names = {}, lastSeq = null, attempt = 0;
fetch('/v1/catalog').then(r => r.json()).then(c => c.gifts.forEach(g => names[g.id] = g));
function card(ev) {
  const g = names[ev.gift] || { name: ev.gift, coins: 0 };
  const el = document.createElement('div');
  el.className = 'gift' + (g.coins >= 1000 ? ' big' : '');
  el.textContent = `${ev.sender} sent ${g.name}`;
  const combo = document.createElement('span');
  combo.className = 'combo';
  combo.textContent = `x${ev.combo}`;
  el.appendChild(combo);
  feed.appendChild(el);
  while (feed.children.length > 6) feed.removeChild(feed.firstChild);
  setTimeout(() => el.remove(), 5200);
}
function connect() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${proto}://${location.host}/v1/ws?token=${encodeURIComponent(token)}`, 'giftstream.v1.json');
  ws.onopen = () => {
    attempt = 0;
    ws.send(JSON.stringify(lastSeq === null ? { type: 'join', room, coalesce: true } : { type: 'resume', room, since: lastSeq }));
  };
  ws.onmessage = m => {
    const ev = JSON.parse(m.data);
    if (ev.type === 'gift_event') { lastSeq = Math.max(lastSeq || 0, ev.seq); card(ev); }
    else if (ev.type === 'joined' || ev.type === 'resumed') lastSeq = ev.seq;
    else if (ev.type === 'room_stats') stats.textContent = `${ev.viewers} watching · ${ev.diamonds} diamonds` + (ev.top[0] ? ` · top: ${ev.top[0].user}` : '');
    else if (ev.type === 'tip_event') card({ sender: ev.sender, gift: `tip ${(ev.amount_cents / 100).toFixed(2)} ${ev.currency}`, combo: 1 });
    else if (ev.type === 'error' && ev.code === 'history_gone') { lastSeq = null; ws.close(); }
    else if (ev.type === 'room_ended') stats.textContent = 'live ended';
  };
  ws.onclose = e => {
    // 4001: the overlay token expired; reconnecting with it cannot work.
    if (e.code === 4001) { stats.textContent = 'overlay token expired: mint a new overlay URL'; return; }
    const delay = Math.random() * Math.min(30000, 250 * 2 ** attempt++);
    setTimeout(connect, delay);
  };
}
connect();
