"""`accelkit bench NAME`: measurements that print figures (simulator speed, model runs, utilization,
fidelity) and the accelerator-specific comparisons (`potacc_shift_pe`, `mm2im_tconv`, `scalesim`)."""
