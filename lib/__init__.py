"""SGAN: saliency-guided self-attention network for weakly supervised segmentation.

Docstrings cite the recipe every stage follows, docs/recipe.md, by its sections ("recipe
11.5" is its section 11.5).
"""
