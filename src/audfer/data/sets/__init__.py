"""The built-in datasets, one module each; every module declares its dataset and registers it
(``audfer.data.registry.register_dataset``). ``audfer.data.registry`` imports them all when a dataset is first
looked up or listed, so a module must import no table library at the top (its functions import what they use).
A dataset of your own is a module like these anywhere on the path, named ``package.module:name`` in a config."""
