"""Few-shot image classification: episodes, backbones, the metric and gradient-based methods (methods/),
episodic meta-training and evaluation, augmentation."""
