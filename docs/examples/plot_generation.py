"""
Generating text with the bundled model
======================================

fastrnn ships a small character-level language model (a 2-layer LSTM of hidden 256
trained on the docstrings of Python's standard library, 1.7 MB in float16).
``LanguageModel.generate`` runs the prompt through the sequence kernel in one call,
then one streaming step per character. ``fastrnn generate`` on the command line does
the same.
"""
import time

import matplotlib.pyplot as plt
import numpy as np

from fastrnn import apps

lm, meta = apps.bundled_char_model()
print(lm.rnn)

t0 = time.perf_counter()
text = lm.generate("Return the ", 200, temperature=0)    # greedy: reproducible
elapsed = time.perf_counter() - t0
print(repr(text))
print(f"{elapsed / 200 * 1e6:.0f} µs per character")

# %%
# With ``return_logits=True`` generate also returns the logits of each step; here,
# how sure the model was of each character it chose.
text, logits = lm.generate("def ", 80, temperature=0.8, top_k=20, seed=0,
                           return_logits=True)
p = np.exp(logits - logits.max(axis=-1, keepdims=True))
p /= p.sum(axis=-1, keepdims=True)
print(repr(text))

fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(p.max(axis=-1), ".-")
ax.set_xlabel("generated character")
ax.set_ylabel("probability of the most likely")
ax.set_ylim(0, 1.05)
fig.tight_layout()
