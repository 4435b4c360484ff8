"""Training loops, learning-rate schedules and batch augmentation shared by training and defenses."""
