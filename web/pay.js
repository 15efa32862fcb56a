// Paying with Stripe.js, shared by the pages that take a payment (the live
// page: coins and tips; the brand page: a contract into escrow). Stripe.js
// is loaded once from the server's `stripe.js_url` (the page's CSP allows
// it); the payment form is the pay dialog of the shells (part "pay":
// #pay, #pay-title, #pay-element, #pay-go, #pay-cancel, #pay-status).
// Owns only the confirmation in the browser: what was paid for is credited
// by the server when Stripe's signed webhook arrives, never by this module.
import { setText, t } from '/ui/common.js';

let stripeReady = null;

/** Stripe.js for `cfg` (`{publishable_key, js_url}`), loaded once. */
export function loadStripe(cfg) {
  if (!stripeReady) {
    stripeReady = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = cfg.js_url;
      s.onload = () => (window.Stripe ? resolve(window.Stripe(cfg.publishable_key)) : reject(new TypeError('no Stripe')));
      s.onerror = () => {
        stripeReady = null;
        reject(new TypeError('Stripe.js did not load'));
      };
      document.head.append(s);
    });
  }
  return stripeReady;
}

/** The PaymentIntent states in which Stripe has the payment. */
const PAID = new Set(['succeeded', 'processing', 'requires_capture']);

/**
 * Collect and confirm a payment with Stripe's Payment Element, with the
 * Stripe.js of `cfg`. Resolves true once Stripe accepted it, false when
 * the payer cancels; errors stay in the dialog (in words) until the payer
 * retries or cancels. `amount` is the money in words, for the title.
 */
export async function pay(cfg, clientSecret, amount) {
  const $ = (id) => document.getElementById(id);
  const box = $('pay');
  const status = $('pay-status');
  const go = $('pay-go');
  setText($('pay-title'), t('pay.title', { amount }));
  status.classList.remove('error');
  setText(status, t('pay.loading'));
  box.hidden = false;
  go.disabled = true;
  let stripe;
  try {
    stripe = await loadStripe(cfg);
  } catch (e) {
    box.hidden = true;
    throw e;
  }
  const elements = stripe.elements({ clientSecret });
  const element = elements.create('payment');
  $('pay-element').replaceChildren();
  element.mount($('pay-element'));
  setText(status, '');
  go.disabled = false;
  go.focus();
  return new Promise((resolve) => {
    const finish = (ok) => {
      go.onclick = null;
      box.onkeydown = null;
      $('pay-cancel').onclick = null;
      try {
        element.destroy();
      } catch {}
      box.hidden = true;
      resolve(ok);
    };
    go.onclick = async () => {
      go.disabled = true;
      status.classList.remove('error');
      let r;
      try {
        // Stripe.js confirms with the Payment Element; a Stripe.js without
        // confirmPayment (localstripe's mock) confirms the card.
        r = stripe.confirmPayment
          ? await stripe.confirmPayment({ elements, redirect: 'if_required', confirmParams: { return_url: location.href } })
          : await stripe.confirmCardPayment(clientSecret, { payment_method: { card: element } });
      } catch (e) {
        r = { error: e };
      }
      go.disabled = false;
      const pi = r && r.paymentIntent;
      if (r && !r.error && pi && PAID.has(pi.status)) return finish(true);
      const why = (r && r.error && (r.error.message || r.error.code)) || (pi && pi.status) || '';
      status.classList.add('error');
      setText(status, t('pay.failed', { message: why }));
    };
    $('pay-cancel').onclick = () => finish(false);
    box.onkeydown = (ev) => {
      if (ev.key === 'Escape') finish(false);
    };
  });
}
