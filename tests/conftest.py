"""Test-session settings.

One torch thread: the suite's tensors are small, and on a shared 2-core machine two OpenMP
threads made small operations up to ~10x slower when another process held a core. This only
affects the test process (the library never sets threads).
"""

import torch

torch.set_num_threads(1)
