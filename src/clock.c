/* Owns the clock's turn state (clock.h): which socket callback is running and the
 * reading it shares. */
#include "clock.h"

struct clock_turn clock_turn;
