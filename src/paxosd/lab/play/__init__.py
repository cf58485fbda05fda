"""`paxosd lab play`: an interactive lab in which the learner is the network.

`session` keeps every state of a run (apply, undo, fork, a timeline of branches) over the real
cores, driven through the explorer's own successor function; `coach` asks the explorer what
can still happen from a state; `tours` are the book's chapters as guided exercises; `server`
serves it all, with the page's assets, over aiohttp.
"""
