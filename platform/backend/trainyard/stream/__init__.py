"""Live job events: the bus that carries committed events and the WebSocket that relays them."""
