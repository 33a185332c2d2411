"""edge-export and edge-flash: TFLite Micro firmware for microcontrollers."""
