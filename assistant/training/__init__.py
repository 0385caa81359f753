"""The language model's pipelines: instruction data, corpora, training the adapter, evaluating it."""
