"""What training and evaluation both use: the data set a config names, the workdir's layout, checkpoints
and the one restore path, the run's saved config, embedding, progress lines and scalars."""
