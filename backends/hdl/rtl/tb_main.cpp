// The clock for nm_tb under Verilator: toggle until the testbench calls $finish.
#include <memory>

#include "Vnm_tb.h"
#include "verilated.h"

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    context->commandArgs(argc, argv);
    const std::unique_ptr<Vnm_tb> tb{new Vnm_tb{context.get()}};
    tb->clk = 0;
    tb->eval();
    while (!context->gotFinish()) {
        tb->clk = 1;
        tb->eval();
        tb->clk = 0;
        tb->eval();
        context->timeInc(1);
    }
    tb->final();
    return 0;
}
