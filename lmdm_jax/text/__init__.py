"""Text conditioning: the T5 encoder and its sentencepiece tokenizer."""
