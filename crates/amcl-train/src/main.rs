fn main() {
    println!("amcl-train");
}
