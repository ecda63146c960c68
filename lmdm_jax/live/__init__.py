"""Host-side playback: everything around the pure stream that talks to
people, files and sound cards (docs/architecture.md).

  session     LiveSession: prompts, crossfades, CFG / steps / seed between
              blocks, context drop, save / load, per-block log
  player      Player: generation thread ahead of the audio callback, ring
              buffer, crossfaded block boundaries; write_wav
  commands    the line commands of `lmdm live`
  generate    `lmdm generate`: prompt (+ sketch / partner files) -> WAV
  cli         `lmdm live`
  track       control tracks: time-aligned controls from files or curves
  live_input  live input (file or microphone) -> per-block controls
"""
