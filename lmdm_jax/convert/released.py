"""The released configurations the converters are written against, as
published (the parts the converters read), so the benchmarks and tests that
need the real shapes share one copy:

- SAO_SMALL: stabilityai/stable-audio-open-small's model_config.json
  (Oobleck VAE, T5-base prompt + seconds_total conditioning, the 341M DiT);
- T5_BASE: google-t5/t5-base's config.json (the prompt encoder).

Nothing here is downloaded: `lmdm fetch sao-small` reads the real files.
"""

SAO_SMALL = {
    "model_type": "diffusion_cond", "sample_rate": 44100,
    "sample_size": 524288, "audio_channels": 2,
    "model": {
        "pretransform": {"type": "autoencoder", "config": {
            "encoder": {"type": "oobleck", "config": {
                "in_channels": 2, "channels": 128,
                "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
                "latent_dim": 128, "use_snake": True}},
            "decoder": {"type": "oobleck", "config": {
                "out_channels": 2, "channels": 128,
                "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
                "latent_dim": 64, "use_snake": True, "final_tanh": False}},
            "latent_dim": 64, "downsampling_ratio": 2048, "io_channels": 2}},
        "conditioning": {"cond_dim": 768, "configs": [
            {"id": "prompt", "type": "t5",
             "config": {"t5_model_name": "t5-base", "max_length": 64}},
            {"id": "seconds_total", "type": "number",
             "config": {"min_val": 0, "max_val": 256}}]},
        "diffusion": {
            "type": "dit", "diffusion_objective": "rf_denoiser",
            "cross_attention_cond_ids": ["prompt", "seconds_total"],
            "global_cond_ids": ["seconds_total"],
            "config": {"io_channels": 64, "embed_dim": 1024, "depth": 16,
                       "num_heads": 8, "cond_token_dim": 768,
                       "global_cond_dim": 768,
                       "transformer_type": "continuous_transformer",
                       "attn_kwargs": {"qk_norm": "ln"}}}}}

T5_BASE = {"vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072,
           "num_layers": 12, "num_heads": 12,
           "relative_attention_num_buckets": 32,
           "relative_attention_max_distance": 128,
           "feed_forward_proj": "relu", "layer_norm_epsilon": 1e-6,
           "model_type": "t5"}
