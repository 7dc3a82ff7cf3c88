"""Ray Tune sweeps over the methods' training configs."""
