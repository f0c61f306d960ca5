// The brain-tumor web page: pick or drop MRI images, POST each to the API's `predict?explain=true`
// with the pasted API key, and show the label, the four probabilities and the Grad-CAM heatmap
// laid over the image where the model looked (`heatmap.frame`). No framework, no build step.

const KEY_STORAGE = 'brain-tumor-api-key';
const TYPES = ['image/jpeg', 'image/png'];

const $ = (id) => document.getElementById(id);
const keyInput = $('api-key');
const filesInput = $('files');
const drop = $('drop');
const opacity = $('opacity');
const status = $('status');
const results = $('results');

// The API sits beside the page: `/` and `/predict` locally, `/prod/` and `/prod/predict` on AWS.
const base = `${location.origin}${location.pathname.replace(/[^/]*$/, '')}`;
const predictUrl = new URL('predict?explain=true', base);

keyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? '';
keyInput.addEventListener('input', () => sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim()));

opacity.addEventListener('input', () => {
  const pct = `${opacity.value}%`;
  document.documentElement.style.setProperty('--heat-opacity', String(opacity.value / 100));
  opacity.setAttribute('aria-valuetext', pct);
  $('opacity-value').textContent = pct;
});

filesInput.addEventListener('change', () => {
  analyse([...filesInput.files]);
  filesInput.value = ''; // choosing the same file again runs it again
});
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  analyse([...event.dataTransfer.files]);
});

let running = Promise.resolve();

/** Queues the files: one request each, in order, so results arrive in the order chosen. */
function analyse(files) {
  if (files.length === 0) return;
  running = running.then(async () => {
    const summaries = [];
    for (const [i, file] of files.entries()) {
      status.textContent = `Analysing ${file.name} (${i + 1} of ${files.length})…`;
      summaries.push(await analyseOne(file));
    }
    status.textContent = summaries.join(' ');
  });
}

/** Sends one file, adds its result card, and returns a one-line summary for the live region. */
async function analyseOne(file) {
  const card = document.createElement('li');
  card.className = 'result';
  const title = document.createElement('h2');
  title.textContent = file.name;
  card.append(title);
  results.prepend(card);
  try {
    const prediction = await predict(file);
    await showPrediction(card, file, prediction);
    const pct = percent(prediction.probabilities[prediction.label]);
    return `${file.name}: ${prediction.label} (${pct}).`;
  } catch (err) {
    const message = err instanceof ApiError ? err.message : `Unexpected error: ${err?.message ?? err}`;
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = message;
    card.append(p);
    return `${file.name}: error. ${message}`;
  }
}

class ApiError extends Error {}

async function predict(file) {
  const key = keyInput.value.trim();
  // The API accepts JPEG and PNG bodies; a file of another type is sent as it is, so the API's
  // own answer (415) explains it.
  const type = TYPES.includes(file.type) ? file.type : file.type || 'application/octet-stream';
  let res;
  try {
    res = await fetch(predictUrl, {
      method: 'POST',
      headers: { 'content-type': type, ...(key ? { 'x-api-key': key } : {}) },
      body: file,
    });
  } catch {
    throw new ApiError(`Could not reach the API at ${predictUrl.origin}: is it still running?`);
  }
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (!res.ok) throw new ApiError(describeError(res.status, body));
  if (!body?.label || !body.probabilities) throw new ApiError('The API answered without a prediction.');
  return body;
}

/** The API's error, in words, with its code and status for whoever reports it. */
function describeError(status, body) {
  const code = body?.error?.code ?? '';
  const detail = body?.error?.message ?? body?.message ?? '';
  const words =
    {
      UNDECODABLE_IMAGE: 'This file is not a readable JPEG or PNG image.',
      EMPTY_BODY: 'This file is empty.',
      UNSUPPORTED_MEDIA_TYPE: 'Only JPEG and PNG images can be analysed.',
      IMAGE_TOO_LARGE: 'This image has too many pixels (the limit is 8192 x 8192).',
      PAYLOAD_TOO_LARGE: 'This file is too large for the API.',
      REQUEST_TOO_LARGE: 'This file is too large for the API.',
      INVALID_API_KEY: 'The API refused the key: check the API key above.',
      MISSING_AUTHENTICATION_TOKEN: 'The API refused the request: check the API key above.',
      THROTTLED: 'The API is busy: wait a moment and try again.',
      THROTTLED_REQUEST: 'The API is busy: wait a moment and try again.',
      QUOTA_EXCEEDED: "This API key's daily quota is used up.",
      MODEL_NOT_READY: 'The model is still starting: try again in a few seconds.',
      UPSTREAM_ERROR: 'The model failed to answer: try again, and tell the operator if it persists.',
      EXPLAIN_UNSUPPORTED: 'This model cannot draw heatmaps; the prediction needs a request without explain.',
      INTEGRATION_TIMEOUT: 'The model took too long to answer: try again.',
    }[code] ??
    (status === 403
      ? 'The API refused the request: check the API key above.'
      : status === 413
        ? 'This file is too large for the API.'
        : status >= 500
          ? 'The API failed: try again, and tell the operator if it persists.'
          : 'The API could not process this file.');
  const tail = [code, detail && detail !== words ? detail : ''].filter(Boolean).join(': ');
  return `${words} (HTTP ${status}${tail ? `, ${tail}` : ''})`;
}

async function showPrediction(card, file, prediction) {
  const figure = document.createElement('figure');
  figure.style.margin = '0';
  const scan = document.createElement('div');
  scan.className = 'scan';
  const img = document.createElement('img');
  img.src = URL.createObjectURL(file);
  img.alt = `${file.name}, the uploaded scan`;
  scan.append(img);
  figure.append(scan);
  card.append(figure);
  try {
    await img.decode();
  } catch {
    // The API read it but this browser cannot show it: keep the numbers, drop the picture.
    scan.remove();
  }

  const heat = prediction.heatmap;
  if (heat?.png && scan.isConnected) {
    const overlay = document.createElement('img');
    overlay.className = 'heatmap';
    overlay.alt = `Heatmap: where the model found evidence of ${prediction.label} (red strongest, blue none)`;
    overlay.src = `data:image/png;base64,${heat.png}`;
    // `frame` is where the model's input square lies in the image, in its pixels (may pass its edges).
    const frame = heat.frame ?? { left: 0, top: 0, width: img.naturalWidth, height: img.naturalHeight };
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    Object.assign(overlay.style, {
      left: `${(100 * frame.left) / w}%`,
      top: `${(100 * frame.top) / h}%`,
      width: `${(100 * frame.width) / w}%`,
      height: `${(100 * frame.height) / h}%`,
    });
    scan.append(overlay);
    const caption = document.createElement('figcaption');
    caption.className = 'note';
    caption.textContent = 'Heatmap: red where the model found the most evidence for its label.';
    figure.append(caption);
  }

  const label = document.createElement('p');
  label.className = 'label';
  const strong = document.createElement('strong');
  strong.textContent = prediction.label;
  label.append('Label: ', strong);
  card.append(label);

  const list = document.createElement('dl');
  list.className = 'probs';
  list.setAttribute('aria-label', 'Probabilities');
  for (const [name, p] of Object.entries(prediction.probabilities)) {
    const row = document.createElement('div');
    row.className = name === prediction.label ? 'prob top' : 'prob';
    const dt = document.createElement('dt');
    dt.textContent = name;
    const dd = document.createElement('dd');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    bar.append(fill);
    const value = document.createElement('span');
    value.className = 'pct';
    value.textContent = percent(p);
    dd.append(bar, value);
    row.append(dt, dd);
    list.append(row);
  }
  card.append(list);
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}
