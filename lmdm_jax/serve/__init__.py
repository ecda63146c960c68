"""`lmdm serve`: the browser instrument (server, page, MIDI and OSC).

  protocol.py  what a page / OSC / MIDI message may say -> `lmdm live` lines
  engine.py    the playing session: Player -> audio frames, coalesced controls
  server.py    aiohttp: the page, its static files and the WebSocket
  cli.py       `lmdm serve`: arguments, run loop, files
  osc.py midi.py  the same controls from OSC (UDP) and MIDI (mido)
  static/      index.html, app.js, worklet.js (no CDN, no build step)
"""
