"""bridge: Schrödinger bridges and generative models with stochastic interpolants."""

__version__ = "0.1.0"
