"""RL agents. `hirelc.agents.releq`: PPO with the seed 000 §2.5 networks (RecurrentPPO with
an LSTM first hidden layer, or an MLP-only PPO for the ablation). Imported on use: importing
this package does not load stable-baselines3.
"""
