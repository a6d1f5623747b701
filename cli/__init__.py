"""The ``airy-actors`` console script: how the processes of the product are composed and started."""
