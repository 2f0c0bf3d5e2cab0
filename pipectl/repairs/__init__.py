"""The operator's hands: each module is one kind of write, done through `pipectl.repair.execute`."""
