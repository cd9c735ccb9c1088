"""Generator-free generation: the per-class GMM start (gmm, image_sets), the augmented views and crops
(views), gradient ascent on CLIP similarity (generate), the shipped prompts and the step-at-a-time runs."""
