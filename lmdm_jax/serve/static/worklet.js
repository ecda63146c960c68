// lmdm serve: the AudioWorklet that plays the server's PCM frames.
// A ring buffer per channel, filled from the page (port messages), read at
// the context's rate; linear-interpolation resampling where the context's
// rate differs from the model's. Underruns play silence and are counted;
// playback (re)starts once `prebuffer` seconds are buffered.
class LmdmPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.channels = o.channels;
    this.srcRate = o.sampleRate;
    this.ratio = o.sampleRate / sampleRate;     // source samples per output
    this.capacity = Math.ceil(o.sampleRate * o.capacitySeconds);
    this.buf = [];
    for (let c = 0; c < this.channels; c++) this.buf.push(new Float32Array(this.capacity));
    this.write = 0;          // absolute source sample index written
    this.read = 0;           // absolute (fractional) source index read
    this.prebuffer = Math.ceil(o.sampleRate * o.prebufferSeconds);
    this.maxBuffered = Math.ceil(o.sampleRate * o.maxSeconds);
    this.playing = false;
    this.underruns = 0; this.dropped = 0; this.segments = [];
    this.lastReport = 0; this.playingBlock = -1; this.playingSeq = -1;
    this.port.onmessage = (e) => this.onFrame(e.data);
  }
  onFrame(f) {
    const n = f.data[0].length;
    if (this.write + n - this.read > this.capacity - 1) return;  // full: drop
    for (let c = 0; c < this.channels; c++) {
      const src = f.data[Math.min(c, f.data.length - 1)], dst = this.buf[c];
      for (let i = 0; i < n; i++) dst[(this.write + i) % this.capacity] = src[i];
    }
    this.segments.push([this.write, f.block, f.seq]);
    this.write += n;
    if (this.write - this.read > this.maxBuffered) {   // the page fell behind
      this.dropped += 1;
      this.read = this.write - this.prebuffer;
    }
  }
  process(inputs, outputs) {
    const out = outputs[0], frames = out[0].length;
    const need = Math.ceil(frames * this.ratio) + 2;
    const avail = this.write - this.read;
    if (!this.playing && avail >= this.prebuffer) this.playing = true;
    if (this.playing && avail < need) { this.playing = false; this.underruns += 1; }
    if (this.playing) {
      for (let i = 0; i < frames; i++) {
        const pos = this.read + i * this.ratio, i0 = Math.floor(pos), a = pos - i0;
        for (let c = 0; c < out.length; c++) {
          const b = this.buf[Math.min(c, this.channels - 1)];
          out[c][i] = b[i0 % this.capacity] * (1 - a) + b[(i0 + 1) % this.capacity] * a;
        }
      }
      this.read += frames * this.ratio;
      while (this.segments.length > 1 && this.segments[1][0] <= this.read) this.segments.shift();
      if (this.segments.length) { this.playingBlock = this.segments[0][1]; this.playingSeq = this.segments[0][2]; }
    } else {
      for (let c = 0; c < out.length; c++) out[c].fill(0);
    }
    if (currentTime - this.lastReport > 0.05) {
      this.lastReport = currentTime;
      this.port.postMessage({buffered: (this.write - this.read) / this.srcRate,
        underruns: this.underruns, dropped: this.dropped, playing: this.playing,
        block: this.playingBlock, seq: this.playingSeq, time: currentTime});
    }
    return true;
  }
}
registerProcessor('lmdm-player', LmdmPlayer);

// The page's input (microphone or a file being played): mono chunks of
// `chunk` samples posted to the page, which sends them to the server.
class LmdmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.chunk = options.processorOptions.chunk;
    this.buf = new Float32Array(this.chunk); this.n = 0;
  }
  process(inputs) {
    const inp = inputs[0];
    if (!inp || !inp.length) return true;
    const frames = inp[0].length;
    for (let i = 0; i < frames; i++) {
      let s = 0;
      for (let c = 0; c < inp.length; c++) s += inp[c][i];
      this.buf[this.n++] = s / inp.length;
      if (this.n === this.chunk) { this.port.postMessage(this.buf.slice()); this.n = 0; }
    }
    return true;
  }
}
registerProcessor('lmdm-capture', LmdmCapture);
