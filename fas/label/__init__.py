"""Growing a CLASS-8 dataset (CLIPC8 paper, 5.11): suggest, review, merge, retrain, compare."""
