// The app of the start-up benchmark: a Node process that starts and exits.
