//! A kernel's backward pass as a node of burn's autodiff graph, on flex.
//!
//! Every kernel of this crate is recorded the same way: unwrap each tracked input into its graph
//! node and its flex values ([`tracked`]), run the forward on the values, and record the output
//! with what the backward pass will need ([`record`]). When burn walks the graph back, the
//! kernel's [`FlexBackward::backward`] turns the output's gradient into one gradient per input.
//!
//! Only autodiff without gradient checkpointing (`NoCheckpointing`) is handled: under another
//! strategy [`tracked`] returns `None` and the caller falls back to burn's op.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;

use crate::buffer::contiguous;

/// The autodiff backend these kernels join.
pub type Tracked = Autodiff<Flex, NoCheckpointing>;

/// The backward pass of a kernel with `N` inputs.
pub trait FlexBackward<const N: usize>: Send + std::fmt::Debug + Sized + 'static {
    /// What the forward saved for the backward pass.
    type State: Clone + Send + std::fmt::Debug + 'static;

    /// The gradients of the `N` inputs, given the saved state and the output's gradient
    /// (contiguous); an input that is not `wanted` may get `None`.
    fn backward(
        self,
        state: Self::State,
        grad: FlexTensor,
        wanted: [bool; N],
    ) -> [Option<FlexTensor>; N];
}

/// An input of a kernel under autodiff: its graph node and its values, contiguous. `None` when
/// the tensor is not on flex with `NoCheckpointing`.
pub fn tracked<const D: usize>(tensor: Tensor<D>) -> Option<(NodeGuard, FlexTensor)> {
    let primitive = tensor.try_into_primitive::<Tracked>().ok()?;
    let node = primitive.node();
    Some((node, contiguous(primitive.into_primitive())))
}

/// The kernel's output as a tensor of the graph, whose gradient flows to `nodes` (the inputs, in
/// order) through `op`'s backward pass with `state` (dropped when no input needs a gradient).
pub fn record<const N: usize, const D: usize, Op: FlexBackward<N>>(
    op: Op,
    nodes: [NodeGuard; N],
    output: FlexTensor,
    state: Op::State,
) -> Tensor<D> {
    let output = match Node(op).prepare::<NoCheckpointing>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    };
    Tensor::from_primitive::<Tracked>(output)
}

/// burn's node for a [`FlexBackward`].
#[derive(Debug)]
struct Node<Op>(Op);

impl<const N: usize, Op: FlexBackward<N>> Backward<Flex, N> for Node<Op> {
    type State = Op::State;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let computed = self.0.backward(ops.state, grad, wanted);
        for (node, grad) in ops.parents.into_iter().zip(computed) {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, grad);
            }
        }
    }
}
