"""Feed-forward stylisation: networks that stylise in one forward pass (Johnson et al., conditional
instance norm, AdaIN), their registry, training and the stylizer that runs them."""
