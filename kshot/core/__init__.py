"""What every domain shares, and nothing domain-specific: errors, progress, the allocator, distributed
set-up, atomic writes and checksums (io), checkpoints and the saved-model format, statistics and the
classification report, class means and distances (prototypes), the functional inner loop (adapt) and
the optimisation loop (loop). Nothing here imports a domain."""
