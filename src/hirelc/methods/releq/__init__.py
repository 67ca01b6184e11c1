"""ReLeQ (seed 000): reward, environment, and the search loop around the PPO agent.

The environment and reward are importable without torch; `runner` pulls in SB3.
"""
