// lmdm serve: the page. WebSocket in (audio frames, info, stats, acks),
// controls out (JSON, lmdm_jax/serve/protocol.py), an AudioWorklet out.
'use strict';
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get('token');
const state = window.lmdm = {
  info: null, stats: null, controller: false, framesReceived: 0,
  blocksScheduled: 0, lastBlock: -1, acks: [], errors: [], latencies: [],
  pending: {}, worklet: null, playing: false, recording: null, events: [],
};
let ws = null, ctx = null, node = null, nextId = 1;

function log(text, cls) {
  const d = document.createElement('div');
  if (cls) d.className = cls;
  d.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const box = $('log'); box.appendChild(d); box.scrollTop = box.scrollHeight;
  while (box.childNodes.length > 300) box.removeChild(box.firstChild);
}

function send(msg) {
  if (!ws || ws.readyState !== 1) return null;
  msg.id = nextId++;
  state.pending[msg.id] = {t: performance.now(), msg};
  ws.send(JSON.stringify(msg));
  return msg.id;
}
window.lmdmSend = send;
window.lmdmContext = () => ctx;

// -- socket -------------------------------------------------------------------
function connect() {
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = token ? `?token=${encodeURIComponent(token)}` : '';
  ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => { $('conn').textContent = 'connected'; };
  ws.onclose = () => { $('conn').textContent = 'disconnected (reload)'; };
  ws.onmessage = (e) => typeof e.data === 'string' ? onJson(JSON.parse(e.data)) : onFrame(e.data);
}

function onFrame(buf) {
  const h = new Int32Array(buf, 0, 4);
  const [block, channels, n, seq] = h;
  const data = [];
  for (let c = 0; c < channels; c++) data.push(new Float32Array(buf, 16 + c * n * 4, n));
  state.framesReceived += 1;
  if (block > state.lastBlock) { state.lastBlock = block; state.blocksScheduled += 1; }
  if (node && state.playing) node.port.postMessage({block, seq, data});
  if (state.recording) state.recording.push(data.map((a) => a.slice()));
}

function onJson(m) {
  if (m.type === 'info') {
    if (m.own_session) { state.lastBlock = -1; state.synced = false; log('this page now plays its own session', 'ok'); }
    state.info = m; setRole(m.controller); buildControls(m);
  }
  else if (m.type === 'stats') {
    state.stats = m;
    if (!state.synced) {   // the sliders start where the session is
      state.synced = true;
      const c = m.controls;
      $('cfg').value = c.cfg; $('cfg-v').textContent = c.cfg;
      $('rescale').value = c.rescale; $('rescale-v').textContent = c.rescale;
      $('steps').value = String(c.steps); $('seed').value = c.seed;
    }
    showStats();
  }
  else if (m.type === 'controller') setRole(m.controller);
  else if (m.type === 'ack') {
    state.acks.push(m);
    const p = state.pending[m.id];
    if (p && m.block !== null && m.block !== undefined && !['pause', 'resume'].includes(p.msg.type)) { p.block = m.block; }
    else delete state.pending[m.id];
    state.events.push({t: performance.now() / 1e3, ...m});
    if (m.message) log(m.message, 'ok');
  } else if (m.type === 'error' || m.type === 'coalesced') {
    if (m.type === 'error') { state.errors.push(m); log(`refused: ${m.reason}`, 'err'); }
    delete state.pending[m.id];
  }
}

function setRole(c) {
  state.controller = c;
  $('role').innerHTML = '';
  if (c) { $('role').textContent = 'controlling · '; return; }
  const b = document.createElement('button');
  b.textContent = 'Take control'; b.onclick = () => send({type: 'control'});
  const own = document.createElement('button');
  own.textContent = 'Own session'; own.onclick = () => send({type: 'session'});
  $('role').append('listening · ', b, ' ', own, ' ');
}

// -- audio --------------------------------------------------------------------
async function play() {
  if (!state.info) return;
  if (!ctx) {
    // ?rate=48000 opens the context at another rate (the worklet resamples).
    const rate = +(new URLSearchParams(location.search).get('rate')) || state.info.sample_rate;
    try { ctx = new AudioContext({sampleRate: rate, latencyHint: 'interactive'}); }
    catch (e) { ctx = new AudioContext({latencyHint: 'interactive'}); }   // resample in the worklet
    await ctx.audioWorklet.addModule('static/worklet.js');
    node = new AudioWorkletNode(ctx, 'lmdm-player', {numberOfInputs: 0,
      outputChannelCount: [state.info.channels], processorOptions: {
        channels: state.info.channels, sampleRate: state.info.sample_rate,
        capacitySeconds: 12, prebufferSeconds: 0.15, maxSeconds: 4}});
    node.port.onmessage = (e) => onWorklet(e.data);
    node.connect(ctx.destination);
    log(`audio: context ${ctx.sampleRate} Hz, model ${state.info.sample_rate} Hz` +
        (ctx.sampleRate !== state.info.sample_rate ? ' (resampled in the worklet)' : ''));
  }
  await ctx.resume();
  state.playing = true;
  if (state.controller && (state.stats || state.info).paused) send({type: 'resume'});
  $('play').textContent = 'Playing'; $('play').classList.add('on');
  $('pause').disabled = false; $('rec').disabled = false;
}

function onWorklet(w) {
  state.worklet = w;
  // Control-to-sound latency: from sending a control to playing its block.
  const out = ctx ? (ctx.outputLatency || ctx.baseLatency || 0) * 1e3 : 0;
  for (const [id, p] of Object.entries(state.pending)) {
    if (p.block !== undefined && w.block >= p.block) {
      state.latencies.push(performance.now() - p.t + out);
      delete state.pending[id];
    }
  }
}

// -- controls -----------------------------------------------------------------
const DEFAULT_PADS = ['slow bach chorale for organ', 'fast irish folk fiddle',
  'ragtime piano joplin', 'epic orchestral battle'];

function addPad(text, weight) {
  const pad = document.createElement('div');
  pad.className = 'pad';
  pad.innerHTML = '<input type="text"><div class="row"><input type="range" min="0" max="1" step="0.01"><span></span></div><button>Go</button> <button>×</button>';
  const [txt, w, span, go, rm] = [pad.querySelector('input[type=text]'), pad.querySelector('input[type=range]'),
    pad.querySelector('span'), ...pad.querySelectorAll('button')];
  txt.value = text; w.value = weight; span.textContent = weight;
  w.oninput = () => { span.textContent = w.value; sendMix(); };
  go.onclick = () => {
    document.querySelectorAll('.pad').forEach((p) => p.classList.remove('active'));
    pad.classList.add('active');
    send({type: 'crossfade', prompts: {[txt.value.trim()]: 1}, blocks: +$('xfade').value || 1, drop: $('xdrop').checked});
  };
  go.className = 'go';
  rm.onclick = () => pad.remove();
  $('pads').appendChild(pad);
}

function mixNow() {
  const prompts = {};
  document.querySelectorAll('.pad').forEach((p) => {
    const t = p.querySelector('input[type=text]').value.trim(), w = +p.querySelector('input[type=range]').value;
    if (t && w > 0) prompts[t] = (prompts[t] || 0) + w;
  });
  return prompts;
}
function sendMix() {
  const prompts = mixNow();
  if (Object.keys(prompts).length) send({type: 'mix', prompts});
}

function buildControls(info) {
  $('pads').innerHTML = '';
  const first = info.settings.prompt || DEFAULT_PADS[0];
  [first, ...DEFAULT_PADS.slice(1)].forEach((t, i) => addPad(t, i === 0 ? 1 : 0));
  $('steps').innerHTML = info.steps_options.map((k) => `<option>${k}</option>`).join('');
  if (info.drawable.length) {
    $('sketch-note').textContent = `sketch controls: ${info.drawable.join(', ')}`;
    $('sketch-box').hidden = false;
    $('sketch-which').innerHTML = info.drawable.map((n) => `<option>${n}</option>`).join('');
    sketch.frames = 4 * info.block_frames;
    drawSketch();
  }
  const kinds = [];
  if (info.controls.includes('partner')) kinds.push('partner');
  if (info.drawable.length) kinds.push('sketch');
  if (kinds.length) {
    $('input-note').textContent = `the page's input steers the model ${(info.delay_frames / info.block_frames * info.block_s).toFixed(1)} s later (generative delay)`;
    $('input-box').hidden = false;
    $('input-as').innerHTML = kinds.map((k) => `<option>${k}</option>`).join('');
  }
  if (!info.cfg_branch) $('cfg').disabled = true;
}

function wire() {
  $('play').onclick = play;
  $('pause').onclick = () => {
    const paused = $('pause').classList.toggle('on');
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    send({type: paused ? 'pause' : 'resume'});
  };
  $('add-pad').onclick = () => addPad('', 0);
  $('apply-mix').onclick = sendMix;
  const cfg = () => { $('cfg-v').textContent = $('cfg').value; $('rescale-v').textContent = $('rescale').value;
    send({type: 'cfg', scale: +$('cfg').value, rescale: +$('rescale').value}); };
  $('cfg').oninput = cfg; $('rescale').oninput = cfg;
  $('steps').onchange = () => send({type: 'steps', k: +$('steps').value});
  $('seed-set').onclick = () => send({type: 'seed', n: Math.trunc(+$('seed').value)});
  $('drop').onclick = () => send({type: 'drop'});
  $('rec').onclick = toggleRecord;
  const c = $('sketch');
  c.onpointerdown = (e) => { sketch.down = true; sketch.last = undefined; c.setPointerCapture(e.pointerId); sketchAt(e); };
  c.onpointermove = (e) => { if (sketch.down) sketchAt(e); };
  c.onpointerup = () => { sketch.down = false; sendSketch(); };
  $('sketch-clear').onclick = () => { sketch.curves = {}; drawSketch(); sendSketch(); };
  $('input-mic').onclick = () => startInput('mic').catch((e) => log(`microphone: ${e}`, 'err'));
  $('input-file').onchange = () => startInput('file').catch((e) => log(`file: ${e}`, 'err'));
  $('input-off').onclick = () => stopInput();
}

// -- sketch canvas ----------------------------------------------------------------
const COLORS = {loudness: '#ffb74d', brightness: '#4fc3f7', pitch: '#ba68c8'};
const sketch = {frames: 96, curves: {}, down: false};
window.lmdmSketch = sketch;

function drawSketch() {
  const c = $('sketch'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = '#2d3440';
  for (let b = 1; b < 4; b++) { g.beginPath(); g.moveTo(b * c.width / 4, 0); g.lineTo(b * c.width / 4, c.height); g.stroke(); }
  for (const [name, v] of Object.entries(sketch.curves)) {
    g.strokeStyle = COLORS[name] || '#eee'; g.lineWidth = 2; g.beginPath();
    v.forEach((y, i) => { const px = (i + 0.5) * c.width / v.length, py = (1 - y) * c.height;
      i ? g.lineTo(px, py) : g.moveTo(px, py); });
    g.stroke();
  }
}

function sketchAt(e) {
  const c = $('sketch'), r = c.getBoundingClientRect();
  const x = Math.max(0, Math.min(0.9999, (e.clientX - r.left) / r.width));
  const y = Math.max(0, Math.min(1, 1 - (e.clientY - r.top) / r.height));
  const name = $('sketch-which').value;
  if (!sketch.curves[name]) sketch.curves[name] = new Array(sketch.frames).fill(0.5);
  const v = sketch.curves[name], i = Math.floor(x * v.length);
  if (sketch.last !== undefined && sketch.last !== i) {   // fill the gap
    const a = Math.min(sketch.last, i), b = Math.max(sketch.last, i);
    for (let k = a; k <= b; k++) v[k] = y;
  }
  v[i] = y; sketch.last = i;
  drawSketch();
}

function sendSketch() {
  const curves = {};
  for (const [n, v] of Object.entries(sketch.curves)) curves[n] = v.map((y) => Math.round(y * 1000) / 1000);
  send({type: 'sketch', curves});
}
window.lmdmSendSketch = sendSketch;

// -- input: microphone or file -> the server (partner / sketch) --------------------
let capture = null, inputSource = null;
async function startInput(kind) {
  if (!ctx) await play();
  if (ctx.sampleRate !== state.info.sample_rate) {
    log(`input needs the context at ${state.info.sample_rate} Hz (it is ${ctx.sampleRate})`, 'err'); return;
  }
  stopInput(false);
  if (!capture) {
    capture = new AudioWorkletNode(ctx, 'lmdm-capture', {numberOfOutputs: 1, processorOptions: {chunk: 4096}});
    const mute = ctx.createGain(); mute.gain.value = 0;
    capture.connect(mute).connect(ctx.destination);
    capture.port.onmessage = (e) => {
      if (!ws || ws.readyState !== 1 || !state.inputOn) return;
      const x = e.data, buf = new ArrayBuffer(16 + 4 * x.length);
      new Int32Array(buf, 0, 4).set([0x4C4D4931, 1, x.length, 0]);
      new Float32Array(buf, 16).set(x);
      ws.send(buf); state.inputFrames = (state.inputFrames || 0) + 1;
    };
  }
  send({type: 'input', as: $('input-as').value});
  state.inputOn = true;
  if (kind === 'mic') {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    inputSource = ctx.createMediaStreamSource(stream);
    inputSource.stopAll = () => stream.getTracks().forEach((t) => t.stop());
  } else {
    const file = $('input-file').files[0];
    const audio = await ctx.decodeAudioData(await file.arrayBuffer());
    inputSource = ctx.createBufferSource(); inputSource.buffer = audio;
    inputSource.connect(ctx.destination); inputSource.start();
    inputSource.stopAll = () => inputSource.stop();
  }
  inputSource.connect(capture);
  $('input-state').textContent = `${kind} → ${$('input-as').value}`;
}
function stopInput(tell = true) {
  if (inputSource) { try { inputSource.stopAll(); inputSource.disconnect(); } catch (e) {} inputSource = null; }
  if (tell && state.inputOn) send({type: 'input', as: 'off'});
  state.inputOn = false; $('input-state').textContent = '';
}

// -- meters -------------------------------------------------------------------
function pct(xs, q) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
function fmt(x, d = 0, unit = '') { return x === null || x === undefined ? '–' : `${x.toFixed(d)}${unit}`; }

function showStats() {
  const s = state.stats, w = state.worklet || {};
  const lat = state.latencies;
  const rows = [
    ['block', s.block], ['server buffer', fmt(s.buffered_s, 2, ' s')],
    ['page buffer', fmt(w.buffered, 2, ' s')],
    ['underruns (server / page)', `${s.underruns} / ${w.underruns ?? '–'}`],
    ['compute per block', fmt(s.compute_ms, 0, ' ms')], ['real-time factor', fmt(s.rtf, 2, '×')],
    ['control→sound median', fmt(pct(lat, 0.5), 0, ' ms')], ['control→sound p90', fmt(pct(lat, 0.9), 0, ' ms')],
    ['controls', `cfg ${s.controls.cfg}, steps ${s.controls.steps}, seed ${s.controls.seed}`],
    ['prompt', Object.entries(s.controls.prompts).map(([k, v]) => `${k || '(none)'}=${v.toFixed(2)}`).join('; ')],
    ['frames / blocks heard', `${state.framesReceived} / ${state.blocksScheduled}`],
    ['coalesced / refused', `${s.coalesced} / ${s.refused}`], ['listeners', s.listeners],
  ];
  $('meters').innerHTML = '';
  for (const [k, v] of rows) {
    const a = document.createElement('span'); a.textContent = k;
    const b = document.createElement('span'); b.textContent = v;
    $('meters').append(a, b);
  }
  const cap = state.info ? state.info.block_s * 4 : 4;
  $('buf-bar').style.width = `${Math.min(100, 100 * ((w.buffered || 0) + s.buffered_s) / cap)}%`;
}

// -- recording ------------------------------------------------------------------
function toggleRecord() {
  if (!state.recording) {
    state.recording = []; state.recordT0 = performance.now() / 1e3;
    $('rec').classList.add('on'); $('rec').textContent = 'Stop'; return;
  }
  const chunks = state.recording; state.recording = null;
  $('rec').classList.remove('on'); $('rec').textContent = 'Record';
  const ch = state.info.channels, n = chunks.reduce((a, c) => a + c[0].length, 0);
  const buf = new ArrayBuffer(44 + n * ch * 2), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  const sr = state.info.sample_rate;
  str(0, 'RIFF'); v.setUint32(4, 36 + n * ch * 2, true); str(8, 'WAVEfmt ');
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, ch, true);
  v.setUint32(24, sr, true); v.setUint32(28, sr * ch * 2, true); v.setUint16(32, ch * 2, true);
  v.setUint16(34, 16, true); str(36, 'data'); v.setUint32(40, n * ch * 2, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c[0].length; i++) for (let k = 0; k < ch; k++) {
    v.setInt16(o, Math.max(-1, Math.min(1, c[k][i])) * 32767, true); o += 2;
  }
  $('dl-wav').href = URL.createObjectURL(new Blob([buf], {type: 'audio/wav'})); $('dl-wav').hidden = false;
  const doc = {settings: state.info, events: state.events.filter((e) => e.t >= state.recordT0),
    latencies_ms: state.latencies};
  $('dl-log').href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 1)], {type: 'application/json'}));
  $('dl-log').hidden = false;
}

wire();
connect();
