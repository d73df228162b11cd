"""CenterNet road-user detector: model, YUV420 preprocessing, batched decoding, runtime, training and evaluation."""
