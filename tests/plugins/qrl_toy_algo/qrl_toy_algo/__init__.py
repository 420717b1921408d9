"""A toy third-party RL algorithm, registered into qrl's ``rl_algorithm`` kind through the kernel."""
